"""The report page: one self-contained HTML document (inline CSS and SVG, no script, no
external resource), so it can be mailed, archived or served behind auth as it is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from rlthf_backend.report.charts import (
    REGIONS,
    STATUS_COLOURS,
    STATUS_MEANING,
    margin_curve_svg,
    metric_bars_svg,
    paired_bars_svg,
    region_bounds,
    round_status_svg,
)
from rlthf_backend.report.data import ReportData, RoundRow, WrongLeft

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:10px 14px;min-width:140px}
.card{flex:1 1 150px;max-width:250px}
.card b{display:block;font-size:19px}.card span{color:#666;font-size:12px}
.card small{display:block;color:#8a8a8a;font-size:11.5px;margin-top:2px}
figure{background:#fff;border:1px solid #e2e4e8;border-radius:8px;margin:0;padding:12px}
figcaption{color:#555;font-size:12.5px;margin-top:6px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12.5px;margin-top:6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.legend i.dot{border-radius:50%}
.small{display:flex;flex-wrap:wrap;gap:10px}.small figure{flex:1 1 280px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:12.5px}
th,td{border:1px solid #e2e4e8;padding:4px 6px;text-align:right}th{background:#f0f2f5}
td:first-child,th:first-child{text-align:left}
.empty{background:#fff;border:1px dashed #bbb;border-radius:8px;padding:16px;color:#555}
ol.queue{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:10px 10px 10px 40px;margin:0}
.tag{font-size:11px;background:#eee;border-radius:4px;padding:1px 5px;margin-left:6px}
.tag.done{background:#dcefdc}li.answered{color:#888}
.advice{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:4px 14px}
.advice p{margin:8px 0}.verdict{font-size:15px}
.verdict b.continue{color:#1f7a3a}.verdict b.stop{color:#b3261e}
"""


def _pct(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _tally(k: int, n: int) -> str:
    """``k of n (share)``: a share beside the counts it comes from, so a reader can check it."""
    return f"{k} of {n} ({_pct(k / n)})" if n else "–"


def _whole(v: float) -> int | None:
    """``v`` when it is a whole number (a count behind a rate), else None (a weighted rate)."""
    return round(v) if abs(v - round(v)) < 1e-6 else None


def _amount(v: float) -> str:
    """An expected count of labels: whole above 10, one decimal below (0.4 is not 0)."""
    return str(math.floor(v + 0.5)) if abs(v) >= 10 else f"{v:.1f}"


def _wrong_left_text(est: WrongLeft) -> str:
    """"66 (90% interval 48–91)", or "66 (model estimate, no interval: no audits yet)"."""
    if not est.has_interval:
        return f"{_amount(est.mean)} ({est.no_interval})"
    level = f"{100 * est.level:g}% " if est.level is not None else ""
    return f"{_amount(est.mean)} ({level}interval {_amount(est.low)}–{_amount(est.high)})"


def _human_text(r: RoundRow) -> str:
    return f"{r.human_labels} of {r.pool_size} ({_pct(r.human_effort, 1)})"


#: How each audit scope drew its audits (RoundRow.audit_scope), for labels and notes.
_AUDITS_DRAWN = {
    "pool": "drawn at random from the unlabelled pool",
    "flip_candidates": "drawn at random among the flip candidates",
    "p_wrong": "drawn with a probability that grows with P(LLM wrong)",
}


@dataclass(frozen=True)
class _Tile:
    """One card at the top: ``value`` over ``label`` (what is counted, over which round), and a
    ``note``: what it rests on, or why there is nothing to count."""

    key: str
    value: str
    label: str
    note: str = ""


def _yield_tiles(data: ReportData) -> list[_Tile]:
    """The queue-yield table's newest row, as two tiles: targeted and audited answers of that batch."""
    row = data.newest_yield
    shown = "contradicted the label shown"
    if row is None:
        why = "no batch answered yet (counted once the next round reads the answers)"
        return [_Tile("targeted", "–", f"targeted tasks answered: {shown}", why),
                _Tile("audited", "–", f"audited tasks answered: {shown}", why)]
    q, batch = row.queue_yield, f"round {row.index}'s batch"
    targeted = _Tile("targeted", _tally(q.targeted_contradicted, q.targeted_answered),
                     f"targeted tasks of {batch} that people answered: {shown}",
                     "" if q.targeted_answered else "no targeted answers yet")
    if q.audit_answered:
        note = f"audits {_AUDITS_DRAWN[row.audit_scope]}"
    else:
        note = "that batch held no audits" if row.audit_slice == 0 else "no audited answers yet"
    audited = _Tile("audited", _tally(q.audit_contradicted, q.audit_answered),
                    f"audited tasks of {batch} that people answered: {shown}", note)
    return [targeted, audited]


def _wrong_left_tile(last: RoundRow | None) -> _Tile:
    est = last.wrong_left if last else None
    if last is None or est is None:
        why = "no round yet" if last is None else "this round recorded no estimate"
        return _Tile("wrong-left", "–", "expected wrong labels left in the export", why)
    return _Tile("wrong-left", _wrong_left_text(est), f"expected wrong labels left in the export after round "
                 f"{last.index}", f"from {est.basis}")


def _tiles(data: ReportData) -> list[_Tile]:
    """The cards; each one's value is a cell of a table below (same set, same round)."""
    last = data.rounds[-1] if data.rounds else None
    human = (_Tile("human", _human_text(last), f"pairs people labelled before round {last.index} (share of the pool)")
             if last else _Tile("human", "–", "pairs people labelled (share of the pool)", "no round yet"))
    return [_Tile("pool", str(last.pool_size) if last else "–", "pairs in the pool"), human,
            _Tile("rounds", str(len(data.rounds)), "curation rounds"), *_yield_tiles(data), _wrong_left_tile(last)]


def _cards(data: ReportData) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card" id="tile-{t.key}"><b>{escape(t.value)}</b><span>{escape(t.label)}</span>'
        + (f"<small>{escape(t.note)}</small>" if t.note else "") + "</div>"
        for t in _tiles(data)) + "</div>"


def _curve_section(data: ReportData) -> str:
    curve = data.curve
    if curve is None or not len(curve.margins):
        return '<h2>Reward-margin curve</h2><div class="empty">No curation round has run yet: click Train in ' \
               'Label Studio (or annotate) to start one.</div>'
    p = curve.points
    region_meaning = {name: (fill, text) for name, fill, text in REGIONS}
    legend = "".join(
        f'<span><i style="background:{region_meaning[name][0]};border:1px solid #ccc"></i>'
        f"{escape(region_meaning[name][1])} ({hi - lo})</span>"
        for name, lo, hi in region_bounds(curve)
    )
    dots = "".join(
        f'<span><i class="dot" style="background:{c}"></i>{escape(STATUS_MEANING[s])} '
        f"({curve.statuses.count(s)})</span>"
        for s, c in STATUS_COLOURS.items() if s not in ("keep", "hold") and s in curve.statuses
    )
    notes = "; ".join(p.notes)
    return (
        "<h2>Reward-margin curve</h2><figure>" + margin_curve_svg(curve)
        + f'<div class="legend">{legend}</div><div class="legend">{dots}</div>'
        + f"<figcaption>Each pair's reward-model margin under its current label ({escape(curve.version)}), "
        f"sorted. Elbow at rank {p.elbow} (margin {p.elbow_margin:.3f}), knee at {p.knee}, reflection point at "
        f"{p.reflection} of {p.n}. Hover a dot for its task." + (f" Notes: {escape(notes)}." if notes else "")
        + "</figcaption></figure>"
    )


def _plural(n: float, word: str) -> str:
    return f"{word}{'' if round(n, 1) == 1 else 's'}"


def _stop_paragraph(data: ReportData) -> str:
    """The engine's stop signal, tied to the same estimate of wrong labels left as the tile."""
    sig = data.stop_signal
    if sig is None:
        return ('<p class="verdict" id="stop-signal">This strategy gives no stop signal: judge by the queue '
                "yield below (when targeted tasks are contradicted no more often than audited ones, stop).</p>")
    word = "stop" if sig.stop else "continue"
    why = (" More human labels now buy little: export the curated set." if sig.stop else
           " Each human label in it is still expected to fix a wrong LLM label often enough to pay.")
    est = data.rounds[-1].wrong_left
    of_left = f" of the {_amount(est.mean)} expected left in the export" if est is not None else ""
    return (f'<p class="verdict" id="stop-signal">The next batch ({sig.batch_size} {_plural(sig.batch_size, "task")}) '
            f"is expected to fix about {sig.expected_fixes:.1f} wrong {_plural(sig.expected_fixes, 'label')} "
            f"({sig.per_label:.2f} per human label){escape(of_left)}: <b class=\"{word}\">{word}</b>.{escape(why)}</p>")


def _wrong_left_paragraph(last: RoundRow) -> str:
    est = last.wrong_left
    if est is None:
        return ""
    text = (f"Expected wrong labels left in the export after round {last.index}: {_wrong_left_text(est)}, "
            f"from {est.basis}")
    if est.audit_based is not None:
        text += f"; the audit-based estimate is {_amount(est.audit_based)}"
    return f'<p id="advice-wrong-left">{escape(text)}.</p>'


def _audits_paragraph(last: RoundRow) -> str:
    """The LLM's error rate on every audited answer so far (all rounds), with the count behind it."""
    n, rate = last.audited_pairs, last.audited_error_rate
    if not n or rate is None:
        return ""
    k = _whole(rate * n)
    wrong = (f"{k} of the {n} audited pairs people answered in all rounds so far ({_pct(rate)}"
             if k is not None else
             f"{_pct(rate)} of the {n} audited pairs people answered in all rounds so far (weighted by each audit's "
             "sampling probability")
    ci = last.audited_error_ci
    wrong += f", 95% interval {_pct(ci[0])}–{_pct(ci[1])})" if ci else ")"
    where = {
        "pool": "its error rate where nobody targeted",
        "flip_candidates": "the pairs the engine thinks more likely wrong than right: above 50% there is what a flip "
                           "needs",
        "p_wrong": "weighted back, its error rate over the unlabelled pool",
    }[last.audit_scope]
    return f"<p>The LLM was wrong on {escape(wrong)}; audits {_AUDITS_DRAWN[last.audit_scope]}: {where}.</p>"


def _next_step_section(data: ReportData) -> str:
    """The lead's three questions: go on or stop, how many wrong labels are left, and how sure."""
    if not data.rounds:
        return ""
    last = data.rounds[-1]
    parts = [_stop_paragraph(data), _wrong_left_paragraph(last), _audits_paragraph(last)]
    return '<h2>What to do next</h2><div class="advice">' + "".join(parts) + "</div>"


def _yield_cell(k: int, n: int, kind: str) -> str:
    return _tally(k, n) if n else f"– (no {kind} answers)"


#: What the queue-yield comparison means under each audit scope.
_YIELD_BASELINE = {
    "pool": "audits are drawn at random from the unlabelled pool, so the audited column is what random order "
            "would find",
    "flip_candidates": "audits are drawn among the flip candidates, so the queue is compared with "
                       "those, not with random order: set RLTHF_FUSED_AUDIT_SCOPE=pool for that comparison",
    "p_wrong": "audits are drawn with a probability that grows with P(LLM wrong), so the audited column is no "
               "random-order baseline",
}


def _yield_table(rows: list[RoundRow]) -> str:
    body = []
    for r in rows:
        q = r.queue_yield
        targeted = _yield_cell(q.targeted_contradicted, q.targeted_answered, "targeted")
        audited = _yield_cell(q.audit_contradicted, q.audit_answered, "audited")
        body.append(f'<tr data-round="{r.index}"><td>round {r.index}</td><td data-set="targeted">{escape(targeted)}'
                    f'</td><td data-set="audited">{escape(audited)}</td></tr>')
    head = ("batch of", "targeted tasks answered: contradicted the label shown",
            "audited tasks answered: contradicted the label shown")
    return ('<table id="yield-table"><thead><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def _yield_section(data: ReportData) -> str:
    """Per round: how often people contradicted the label shown on targeted vs audited tasks."""
    rows = [r for r in data.rounds if r.queue_yield is not None]
    check = data.queue_check
    if not rows and check is None:
        return ""
    baseline = _YIELD_BASELINE[rows[-1].audit_scope] if rows else _YIELD_BASELINE["pool"]
    intro = ("<h2>Queue yield</h2><p class=\"sub\">Of each round's batch, the tasks people answered by the next "
             "round: how many contradicted the label shown (the LLM's, or its flip where the engine had flipped "
             "the pair), on the tasks the queue targeted vs the audited tasks of the same batch. Targeted well above "
             "audited means the queue finds the LLM's mistakes; close to it means more labels in queue order buy no "
             f"more than audits do. Here {escape(baseline)}. The tiles at the top repeat the newest row.</p>")
    html = [intro]
    if check is not None:
        html.append(
            f'<div class="advice" id="queue-check"><p><b>Known-answer check (demo).</b> Of the first {check.first} '
            f"tasks the queue served after round 0, {check.wrong_in_first} ({_pct(check.share_first)}) are pairs "
            f"the judge got wrong; random order would give {_pct(check.share_random)} ({check.wrong_in_pool} of "
            f"{check.pool}). The round's human batch: {check.wrong_in_batch} of {check.batch}. "
            f"Judge: {escape(check.judge)}.</p></div>")
    if rows:
        chart = paired_bars_svg([(f"r{r.index}", r.queue_yield.targeted_rate, r.queue_yield.audit_rate) for r in rows],
                                "people contradicted the label shown", "queue-yield", ("targeted", "audited"))
        html.append('<div class="small"><figure>' + chart + "</figure><figure>" + _yield_table(rows)
                    + "<figcaption>Contradicted of answered (share). Known for a round once the next round read "
                      "people's answers. The rounds table below counts the same answers together, against the "
                      "LLM's own label.</figcaption></figure></div>")
    return "".join(html)


def _disagreement_cell(r: RoundRow) -> str:
    if r.disagreement_answered == 0:
        return "– (none answered)"
    if r.disagreed is None:
        return "pending"
    return _tally(r.disagreed, r.disagreement_answered)


def _flip_precision_cell(r: RoundRow) -> str:
    if r.flip_precision is None:
        return "–"
    text = _pct(r.flip_precision)
    counted = r.flip_audited and _whole(r.flip_precision * r.flip_audited) == r.flip_audited_wrong
    if counted:  # a weighted rate (adaptive) is no k of n: then the share stands alone
        text = f"{r.flip_audited_wrong} of {r.flip_audited}: {text}"
    if r.flip_precision_ci:
        text += f" ({_pct(r.flip_precision_ci[0])}–{_pct(r.flip_precision_ci[1])})"
    return text


def _round_table(rounds: list[RoundRow]) -> str:
    head = ("round", "version", "why", "batch (tasks)", "audits in batch",
            "batch answers unlike the LLM's own label (targeted + audited)", "flips",
            "flip precision: audited flip candidates the LLM got wrong (95% interval)", "dropped",
            "expected wrong labels left in the export", "pairs people labelled before the round (share of pool)")
    rows = []
    for r in rounds:
        cells = (str(r.index), r.version, r.reason, str(r.batch_size),
                 "–" if r.audit_slice is None else str(r.audit_slice), _disagreement_cell(r), str(r.flips),
                 _flip_precision_cell(r), str(r.counts.get("drop", 0)),
                 _wrong_left_text(r.wrong_left) if r.wrong_left else "–", _human_text(r))
        rows.append(f'<tr data-round="{r.index}">' + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return ('<table id="rounds-table"><thead><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _rounds_section(data: ReportData) -> str:
    if not data.rounds:
        return '<h2>Rounds</h2><div class="empty">No round yet.</div>'
    rs = data.rounds
    labels = [f"r{r.index}" for r in rs]
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(STATUS_MEANING[s])}</span>'
                     for s, c in STATUS_COLOURS.items())
    small = [
        metric_bars_svg(list(zip(labels, [r.human_effort for r in rs])), "human effort (% of pool)", "effort",
                        percent=True),
        metric_bars_svg(list(zip(labels, [r.disagreement for r in rs])), "batch answers unlike the LLM's label",
                        "disagreement", percent=True, colour="#c0392b"),
        metric_bars_svg(list(zip(labels, [r.wrong_left.mean if r.wrong_left else None for r in rs])),
                        "expected wrong left in the export", "wrong-left", colour="#7f5a9e"),
    ]
    return (
        "<h2>Rounds</h2><figure>" + round_status_svg(rs) + f'<div class="legend">{legend}</div>'
        + "<figcaption>How each round split the pool.</figcaption></figure>"
        + '<div class="small" style="margin-top:10px">' + "".join(f"<figure>{s}</figure>" for s in small) + "</div>"
        + "<figcaption>Batch answers unlike the LLM's label: of a round's batch, the tasks people answered by the "
          "next round (targeted and audited together), the share whose human label differs from the LLM's own "
          "label (the queue yield compares with the label shown, which differs where the engine had flipped the "
          "pair); the newest round shows none yet. Expected wrong labels left: the round's estimate over the "
          "exported pairs nobody checked, as in the tile at the top.</figcaption>"
        + '<h2 style="font-size:14px">In numbers</h2>' + _round_table(rs)
    )


def _queue_section(data: ReportData) -> str:
    if not data.queue:
        return '<h2>Next in the queue</h2><div class="empty">Nothing queued for people.</div>'
    items = []
    for q in data.queue:
        name = f"task {q.task_id}"
        if data.label_studio_url:
            href = f"{data.label_studio_url.rstrip('/')}/projects/{data.project_id}/data?task={q.task_id}"
            name = f'<a href="{escape(href)}">{escape(name)}</a>'
        else:
            name = escape(name)
        tag = '<span class="tag">audit (random)</span>' if q.audit else ""
        if q.answered:
            tag += '<span class="tag done">answered</span>'
        opening = '<li class="answered">' if q.answered else "<li>"
        items.append(f"{opening}{name} — P(LLM wrong) {_pct(q.p_wrong)}{tag}</li>")
    known = data.queue[0].answered is not None
    left = sum(1 for q in data.queue if not q.answered)
    note = (f"{left} of {len(data.queue)} still unanswered." if known
            else "Label Studio was not asked which are answered already.")
    return ("<h2>Next in the queue</h2><p class=\"sub\">The newest round's batch, in the order Label Studio serves "
            f"it. {escape(note)}</p><ol class=\"queue\" start=\"0\">" + "".join(items) + "</ol>")


def render_report(data: ReportData, generated_at: str) -> str:
    """The whole page for ``data``; ``generated_at`` is printed as given (callers pick the clock)."""
    title = f"RLTHF report: project {data.project_id}"
    sub = (f"Model version {data.latest_version or '–'} · strategy {data.strategy or '–'} · generated {generated_at}")
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        '<link rel="icon" href="data:,">'  # no favicon request (a 404 in the console)
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(sub)}</p>"
        + _cards(data) + _next_step_section(data) + _yield_section(data) + _curve_section(data)
        + _rounds_section(data) + _queue_section(data)
        + "</main></body></html>"
    )
