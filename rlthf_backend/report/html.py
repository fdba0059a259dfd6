"""The report page: one self-contained HTML document (inline CSS and SVG, no script, no
external resource), so it can be mailed, archived or served behind auth as it is."""

from __future__ import annotations

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
from rlthf_backend.report.data import ReportData, RoundRow

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
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


def _num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _cards(data: ReportData) -> str:
    last = data.rounds[-1] if data.rounds else None
    answered = next((r for r in reversed(data.rounds) if r.disagreement is not None), None)
    cards = [
        ("pairs in the pool", str(last.pool_size) if last else "–"),
        ("human labels (effort)", f"{last.human_labels} ({_pct(last.human_effort, 1)})" if last else "–"),
        ("curation rounds", str(len(data.rounds))),
        ("people disagreed with the LLM", _pct(answered.disagreement) if answered else "–"),
        ("est. wrong labels left", _num(last.est_wrong_model) if last else "–"),
    ]
    return '<div class="cards">' + "".join(f"<div class=\"card\"><b>{escape(v)}</b><span>{escape(k)}</span></div>"
                                          for k, v in cards) + "</div>"


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


def _next_step_section(data: ReportData) -> str:
    """The lead's three questions: go on or stop, how many wrong labels are left, and how sure."""
    if not data.rounds:
        return ""
    last, parts = data.rounds[-1], []
    sig = data.stop_signal
    if sig is not None:
        word = "stop" if sig.stop else "continue"
        why = (" More human labels now buy little: export the curated set." if sig.stop else
               " Each human label in it is still expected to fix a wrong LLM label often enough to pay.")
        parts.append(
            f'<p class="verdict" id="stop-signal">The next batch ({sig.batch_size} {_plural(sig.batch_size, "task")}) '
            f"is expected to fix about {sig.expected_fixes:.1f} wrong {_plural(sig.expected_fixes, 'label')} "
            f"({sig.per_label:.2f} per human label): <b class=\"{word}\">{word}</b>.{escape(why)}</p>")
    else:
        parts.append('<p class="verdict" id="stop-signal">This strategy gives no stop signal: judge by the queue '
                     "yield below (when targeted tasks are contradicted no more often than random ones, stop).</p>")
    if last.est_wrong_model is not None:
        text = f"About {last.est_wrong_model:.1f} wrong labels are left"
        if last.est_wrong_interval:
            lo, hi = last.est_wrong_interval
            text += f" (95% interval {lo:.1f}–{hi:.1f})"
        if last.unchecked_exported is not None:
            text += f" among the {last.unchecked_exported} exported pairs nobody checked"
        text += ", by the engine's P(wrong) of each"
        if last.est_wrong_audit is not None:
            text += f"; the audit-based estimate is {last.est_wrong_audit:.1f}"
        parts.append(f'<p id="advice-wrong-left">{escape(text)}.</p>')
    if last.audited_pairs:
        rate = _pct(last.audited_error_rate)
        ci = (f", 95% interval {_pct(last.audited_error_ci[0])}–{_pct(last.audited_error_ci[1])}"
              if last.audited_error_ci else "")
        where = ("its error rate where nobody targeted" if last.audit_scope == "pool" else
                 "drawn at random among the flip candidates, the pairs the engine thinks more likely wrong than right: "
                 "above 50% there is what a flip needs")
        parts.append(f"<p>The LLM was wrong on {rate} of the {last.audited_pairs} random audit pairs people "
                     f"answered{escape(ci)}: {where}.</p>")
    return '<h2>What to do next</h2><div class="advice">' + "".join(parts) + "</div>"


def _yield_section(data: ReportData) -> str:
    """Per round: how often people contradicted the label on targeted vs random (audit) tasks."""
    rows = [r for r in data.rounds if r.queue_yield is not None]
    check = data.queue_check
    if not rows and check is None:
        return ""
    intro = ("<h2>Queue yield</h2><p class=\"sub\">How often people contradicted the label shown, on the tasks "
             "the queue targeted vs the random audit tasks of the same batch. Targeted well above random means the "
             "queue finds the LLM's mistakes; close to it means more labels in queue order buy no more than random "
             "ones. (Rounds that draw audits among the flip candidates, the default, compare the queue with those, "
             "not with random order: set RLTHF_FUSED_AUDIT_SCOPE=pool for that comparison.)</p>")
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
                                "people contradicted the label", "queue-yield", ("targeted", "random audit"))
        body = []
        for r in rows:
            q = r.queue_yield
            cells = (f"round {r.index}", f"{q.targeted_contradicted} of {q.targeted_answered}", _pct(q.targeted_rate),
                     f"{q.audit_contradicted} of {q.audit_answered}", _pct(q.audit_rate))
            body.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
        head = ("batch of", "targeted: contradicted", "share", "random audit: contradicted", "share")
        html.append('<div class="small"><figure>' + chart + "</figure><figure><table id=\"yield-table\"><thead><tr>"
                    + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(body)
                    + "</tbody></table><figcaption>Known for a round once the next round read people's answers."
                    "</figcaption></figure></div>")
    return "".join(html)


def _round_table(rounds: list[RoundRow]) -> str:
    head = ("round", "version", "why", "batch", "audit slice", "people disagreed", "flips", "flip precision",
            "dropped", "est. wrong left", "human effort")
    rows = []
    for r in rounds:
        precision = _pct(r.flip_precision)
        if r.flip_precision_ci:
            precision += f" ({_pct(r.flip_precision_ci[0])}–{_pct(r.flip_precision_ci[1])})"
        disagreement = "pending" if r.disagreement is None else f"{_pct(r.disagreement)} of {r.disagreement_answered}"
        audit = f" (audit {_num(r.est_wrong_audit)})" if r.est_wrong_audit is not None else ""
        wrong = _num(r.est_wrong_model) + audit
        cells = (str(r.index), r.version, r.reason, str(r.batch_size),
                 "–" if r.audit_slice is None else str(r.audit_slice), disagreement, str(r.flips), precision,
                 str(r.counts.get("drop", 0)), wrong, f"{r.human_labels} ({_pct(r.human_effort, 1)})")
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
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
        metric_bars_svg(list(zip(labels, [r.disagreement for r in rs])), "people disagreed with the LLM",
                        "disagreement", percent=True, colour="#c0392b"),
        metric_bars_svg(list(zip(labels, [r.est_wrong_model for r in rs])), "est. wrong labels left", "wrong-left",
                        colour="#7f5a9e"),
    ]
    return (
        "<h2>Rounds</h2><figure>" + round_status_svg(rs) + f'<div class="legend">{legend}</div>'
        + "<figcaption>How each round split the pool.</figcaption></figure>"
        + '<div class="small" style="margin-top:10px">' + "".join(f"<figure>{s}</figure>" for s in small) + "</div>"
        + "<figcaption>Disagreement is measured on a round's batch once people answered it (so the newest round "
          "shows none yet); estimated wrong labels are the engine's expectation over the exported pairs nobody checked."
          "</figcaption>"
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
