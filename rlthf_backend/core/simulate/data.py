"""Datasets with known human labels, for replaying curation offline.

Three line formats are read (gzip'd or plain JSON Lines, detected per file by its first record):

- **judged pairs** (``../shared/data/judged-pairs.jsonl.gz``): ``prompt, response_a,
  response_b, human_label`` and ``llm_labels: {judge_key: {"ab": v, "ba": v}}`` with v in
  a / b / tie / null. ``ab`` is the verdict in (a, b) order, ``ba`` the verdict with the order
  swapped, already mapped back to a/b.
- **plain**: ``prompt, response_a, response_b, human_label, llm_label`` and optional
  ``llm_label_swapped`` (verdict with the order swapped, mapped back) and ``llm_prob``
  (the judge's probability for ``llm_label``).
- **chosen/rejected** transcripts (HH-RLHF): ``chosen, rejected``; the prompt is everything up
  to and including the last ``"\n\nAssistant:"``, the response what follows. These have human
  labels only (no judge); response a is the chosen one for every pair, so callers that train on
  them must not read anything into the side (the simulator shuffles sides with its seed).

Human ties are dropped (they say nothing about which side is better). Labels are read in any
case and padding ("A", " Tie "); anything else, a missing field or a line that is not a JSON
object is a ValueError naming the file and line, never a silently smaller pool.

Which judge supplies the LLM label of a judged pair: unless a key is given, the first entry of
:data:`JUDGE_PREFERENCE` (shell-style patterns, strongest first) under which the pair has a
judge with an a/b verdict in some order. GPT-4 first, then ChatGPT / gpt-3.5-turbo, then the
open models, following the agreement with human labels reported by LLMBar (Zeng et al. 2024)
and PandaLM; within a model, the plain "Vanilla_NoRules" prompt first, as the paper's
zero-shot pre-labeller. If that judge or a stronger one skipped on the way called the pair a tie,
it is flagged ``tie``; if the chosen judge's (a, b)-order verdict is unreadable, ``parse_failed``.
A pair whose judges never
expressed a preference gets a seeded placeholder label flagged ``tie``/``parse_failed``.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlthf_backend.core.curation.state import JudgeEvidence
from rlthf_backend.core.judges.panel import LabelRule, combine_panel
from rlthf_backend.core.types import JudgeStatus, Judgment, MemberVerdict, Pair

#: Judge keys in order of preference (strongest first); shell-style patterns.
JUDGE_PREFERENCE: tuple[str, ...] = (
    "GPT-4/Vanilla_NoRules",
    "GPT-4/Metrics_Reference",
    "GPT-4/Vanilla",
    "GPT-4/*",
    "gpt-4*",
    "ChatGPT/Vanilla_NoRules",
    "ChatGPT/Metrics_Reference",
    "ChatGPT/*",
    "gpt-3.5-turbo*",
    "ChatGPT-0301/*",
    "PaLM2/*",
    "LLaMA2/*",
    "pandalm*",
    "Falcon/*",
    "*",
)

ASSISTANT_TAG = "\n\nAssistant:"


@dataclass
class LabelledPool:
    """Pairs with their human labels and (optionally) the judge's evidence.

    ``human_a_preferred``: True where people preferred response a. ``evidence`` is None for
    data without LLM labels. ``judge_counts``: how many pairs took their LLM label from each
    judge key. ``groups``: a per-pair group name (e.g. the source subset) for reporting.
    """

    pairs: list[Pair]
    human_a_preferred: np.ndarray
    evidence: JudgeEvidence | None
    format: str
    judge_counts: dict[str, int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    dropped_ties: int = 0
    #: judged pairs left out because the judge named with ``judge_key`` never saw them
    skipped_without_judge: int = 0

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def has_llm_labels(self) -> bool:
        return self.evidence is not None

    def subset(self, idx: np.ndarray) -> "LabelledPool":
        idx = np.asarray(idx, dtype=int)
        ev = None if self.evidence is None else self.evidence.take(idx)
        return LabelledPool([self.pairs[i] for i in idx], self.human_a_preferred[idx], ev, self.format,
                            dict(self.judge_counts), [self.groups[i] for i in idx] if self.groups else [],
                            self.dropped_ties, self.skipped_without_judge)


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Records of a JSON Lines file, gzip'd (by magic bytes) or plain; blank lines skipped."""
    for _, record in _numbered_records(path):
        yield record


def _numbered_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSON Lines file; a line that is not a JSON object, or a file
    that is not readable to its end (a truncated gzip), is a ValueError naming the file and line."""
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    line_no = 0
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{line_no}: not JSON: {exc}") from None
                    if not isinstance(record, dict):
                        raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
                    yield line_no, record
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}:{line_no + 1}: not UTF-8 text ({exc.reason})") from None
    except (EOFError, OSError, zlib.error) as exc:
        what = "truncated or damaged gzip file" if gz else "unreadable"
        raise ValueError(f"{path}: {what} after line {line_no} ({exc})") from None


_LABELS = ("a", "b", "tie")
#: Fields every record of a format must have.
_REQUIRED = {"judged": ("prompt", "response_a", "response_b", "human_label"),
             "plain": ("prompt", "response_a", "response_b", "human_label"),
             "chosen_rejected": ("chosen", "rejected")}


def _label(value: object, name: str, where: str, *, required: bool = False) -> str | None:
    """A label as a, b or tie, whatever its case or padding ("A", " Tie "); None when absent.
    Anything else is a ValueError: a label that is silently dropped would shrink the replay."""
    if value is None and not required:
        return None
    label = value.strip().lower() if isinstance(value, str) else None
    if label not in _LABELS:
        raise ValueError(f"{where}: {name} must be a, b or tie (any case), got {value!r}")
    return label


def _checked(rec: dict, fmt: str, where: str) -> dict:
    """The record with its labels normalised (lower case) after checking its fields."""
    missing = [name for name in _REQUIRED[fmt] if name not in rec]
    if missing:
        raise ValueError(f"{where}: no {', '.join(repr(m) for m in missing)} field (a {fmt} record needs "
                         f"{', '.join(_REQUIRED[fmt])})")
    if fmt == "chosen_rejected":
        for name in ("chosen", "rejected"):
            if not isinstance(rec[name], str):
                raise ValueError(f"{where}: {name} must be text, got {type(rec[name]).__name__}")
        return rec
    rec = {**rec, "human_label": _label(rec["human_label"], "human_label", where, required=True)}
    if fmt == "judged":
        llm_labels = rec.get("llm_labels") or {}
        if not isinstance(llm_labels, dict):
            raise ValueError(f"{where}: llm_labels must be an object of judge -> {{ab, ba}}, got "
                             f"{type(llm_labels).__name__}")
        checked = {}
        for judge, verdicts in llm_labels.items():
            if verdicts is not None and not isinstance(verdicts, dict):
                raise ValueError(f"{where}: llm_labels[{judge!r}] must be an object with ab / ba, got {verdicts!r}")
            checked[judge] = {**(verdicts or {}), **{o: _label((verdicts or {}).get(o), f"llm_labels[{judge!r}].{o}",
                                                                where) for o in ("ab", "ba")}}
        rec["llm_labels"] = checked
        return rec
    for name in ("llm_label", "llm_label_swapped"):
        if name in rec:
            rec[name] = _label(rec[name], name, where)
    p = rec.get("llm_prob")
    if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1):
        raise ValueError(f"{where}: llm_prob must be a number from 0 to 1, got {p!r}")
    return rec


def detect_format(record: dict) -> str:
    """``judged``, ``plain`` or ``chosen_rejected`` from one record's keys."""
    if "llm_labels" in record and "human_label" in record:
        return "judged"
    if {"prompt", "response_a", "response_b", "human_label"} <= record.keys():
        return "plain"
    if {"chosen", "rejected"} <= record.keys():
        return "chosen_rejected"
    raise ValueError(f"unrecognised record keys {sorted(record)}: expected judged pairs, "
                     "plain (prompt, response_a, response_b, human_label, llm_label) or chosen/rejected")


def split_transcript(text: str) -> tuple[str, str]:
    """(prompt, response) of an HH-RLHF transcript: prompt up to and including the last
    ``"\\n\\nAssistant:"``; the response is the rest, stripped of surrounding whitespace."""
    cut = text.rfind(ASSISTANT_TAG)
    if cut < 0:
        return "", text.strip()
    cut += len(ASSISTANT_TAG)
    return text[:cut], text[cut:].strip()


def pick_judge(llm_labels: dict, pattern: str | None) -> tuple[str | None, dict, bool]:
    """The judge that supplies a judged pair's LLM label (see module docs).

    Returns ``(key, verdicts, stronger_tie)``. With ``pattern`` (a key or a shell-style
    pattern; ``A|B`` tries B where nothing matches A) only matching keys are used: the first
    (sorted) with an a or b verdict, else the first at all. Otherwise: the first preference
    pattern with a judge that gave a or b in some order; ``stronger_tie`` is True when a preferred
    judge skipped on the way called it a tie."""
    if pattern is not None:
        for alternative in pattern.split("|"):  # "GPT-4/*|gpt-3.5-turbo": the first alternative present
            keys = sorted(k for k in llm_labels if fnmatch.fnmatchcase(k, alternative))
            decisive = [k for k in keys
                        if {(llm_labels[k] or {}).get(o) for o in ("ab", "ba")} & {"a", "b"}]
            key = (decisive or keys or [None])[0]
            if key is not None:
                return key, llm_labels[key] or {}, False
        return None, {}, False
    stronger_tie = False
    seen: set[str] = set()
    for pattern in JUDGE_PREFERENCE:
        for key in sorted(k for k in llm_labels if fnmatch.fnmatchcase(k, pattern) and k not in seen):
            seen.add(key)
            v = llm_labels[key] or {}
            verdicts = (v.get("ab"), v.get("ba"))
            if any(x in ("a", "b") for x in verdicts):
                return key, v, stronger_tie
            stronger_tie |= "tie" in verdicts
    return None, {}, stronger_tie


def load_pool(
    path: Path | str,
    judges: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    label_rule: LabelRule = "primary",
) -> LabelledPool:
    """Read a labelled dataset (format detected from the first record; see the module docs).

    ``limit`` keeps the first N usable pairs (after dropping human ties). ``judges`` names the
    judges of judged pairs (keys or shell-style patterns, :func:`pick_judge`): the first is the
    primary, and judged pairs it never saw are left out (``skipped_without_judge``); two or more
    make a panel whose label follows ``label_rule`` and whose disagreement is evidence, as a
    deployed :class:`~rlthf_backend.core.judges.panel.JudgePanel` gives it. ``seed`` fixes the
    placeholder labels of pairs without any LLM preference.
    """
    records = _numbered_records(Path(path))
    first = next(records, None)
    if first is None:
        raise ValueError(f"{path}: no records")
    try:
        fmt = detect_format(first[1])
    except ValueError as exc:
        raise ValueError(f"{path}:{first[0]}: {exc}") from None
    rows = _PoolRows()
    for line_no, rec in _chain(first, records):
        if limit is not None and len(rows.pairs) >= limit:
            break
        rec = _checked(rec, fmt, f"{path}:{line_no}")
        if fmt == "chosen_rejected":
            _add_transcript_pair(rows, rec)
        elif rec.get("human_label") not in ("a", "b"):
            rows.ties += 1
        elif fmt == "judged" and judges and pick_judge(rec.get("llm_labels") or {}, judges[0])[0] is None:
            # a named judge defines the pool: pairs it never saw are not part of the replay
            rows.skipped += 1
        else:
            _add_pair(rows, rec)
            if fmt == "judged":
                _add_judged_evidence(rows, rec.get("llm_labels") or {}, judges, label_rule)
            else:
                _add_plain_evidence(rows, rec)
    if not rows.pairs:
        raise ValueError(f"{path}: no usable pairs ({rows.ties} with a human tie, {rows.skipped} without the named "
                         "judge)")
    return _to_pool(rows, fmt, seed)


@dataclass
class _PoolRows:
    """What :func:`load_pool` gathers, one entry per usable pair: the pair, whether people
    preferred a, its group; and the LLM evidence as codes (1.0 a, 0.0 b, NaN none) of the label
    (``llm``) and of the other order's verdict (``swapped``), the judge's probability, the tie and
    parse-failure flags and the panel's disagreement. ``ties``: human ties dropped; ``skipped``:
    pairs the named judge never saw."""

    pairs: list[Pair] = field(default_factory=list)
    human: list[bool] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    llm: list[float] = field(default_factory=list)
    swapped: list[float] = field(default_factory=list)
    prob: list[float] = field(default_factory=list)
    tie: list[bool] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    panel: list[float] = field(default_factory=list)
    judge_counts: Counter[str] = field(default_factory=Counter)
    ties: int = 0
    skipped: int = 0


def _code(v: object) -> float:
    """A verdict as a number: 1.0 for a, 0.0 for b, NaN for anything else."""
    return 1.0 if v == "a" else 0.0 if v == "b" else np.nan


def _add_transcript_pair(rows: _PoolRows, rec: dict) -> None:
    """A chosen/rejected record as a pair with response a the chosen one (no LLM evidence)."""
    pc, rc = split_transcript(rec["chosen"])
    pr, rr = split_transcript(rec["rejected"])
    rows.pairs.append(Pair(pc, rc, rr, extra={"prompt_rejected": pr} if pr != pc else {}))
    rows.human.append(True)
    rows.groups.append("hh")


def _add_pair(rows: _PoolRows, rec: dict) -> None:
    """A judged or plain record's pair, human label (a or b) and group."""
    rows.pairs.append(Pair(_text(rec["prompt"]), _text(rec["response_a"]), _text(rec["response_b"]),
                           extra={"id": rec.get("id")}))
    rows.human.append(rec.get("human_label") == "a")
    rows.groups.append(str(rec.get("subset") or rec.get("source") or ""))


def _add_judged_evidence(rows: _PoolRows, llm_labels: dict, judges: Sequence[str] | None,
                         label_rule: LabelRule) -> None:
    """The LLM evidence of a judged pair: the chosen judge's label (its (a, b)-order verdict, else
    the other order's), the other order's verdict, and with two or more ``judges`` the panel's
    label and disagreement."""
    key, v, stronger_tie = pick_judge(llm_labels, judges[0] if judges else None)
    rows.judge_counts[key or "(none)"] += 1
    ab, ba = v.get("ab"), v.get("ba")
    first_ab = ab if ab in ("a", "b") else ba
    other = ba if first_ab == ab else ab
    share = None
    if judges and len(judges) > 1:
        first_ab, other, share = _panel_view(llm_labels, judges, key, ab, ba, first_ab, other, label_rule)
    rows.panel.append(np.nan if share is None else share)
    rows.llm.append(_code(first_ab))
    rows.swapped.append(_code(other) if first_ab in ("a", "b") else np.nan)
    rows.tie.append(stronger_tie or "tie" in (ab, ba))
    # the (a, b) order is always asked; nothing readable there is a failed judgment
    rows.failed.append(key is None or ab is None)
    rows.prob.append(np.nan)


def _add_plain_evidence(rows: _PoolRows, rec: dict) -> None:
    """The LLM evidence of a plain record: ``llm_label``, ``llm_label_swapped`` and ``llm_prob``."""
    ll = rec.get("llm_label")
    rows.judge_counts["llm_label"] += 1
    rows.llm.append(_code(ll))
    sw = rec.get("llm_label_swapped")
    rows.swapped.append(_code(sw) if ll in ("a", "b") else np.nan)
    rows.tie.append(ll == "tie" or sw == "tie")
    rows.failed.append(ll not in ("a", "b", "tie") or ("llm_label_swapped" in rec and sw is None))
    p = rec.get("llm_prob")
    rows.prob.append(float(p) if p is not None and ll in ("a", "b") else np.nan)
    rows.panel.append(np.nan)


def _to_pool(rows: _PoolRows, fmt: str, seed: int) -> LabelledPool:
    """The pool of the gathered ``rows``; pairs without an LLM preference get a placeholder
    label drawn with ``seed`` (one draw per pair, in file order) and are flagged as failed
    unless the judge called them a tie."""
    human_arr = np.asarray(rows.human, dtype=bool)
    if fmt == "chosen_rejected":
        return LabelledPool(rows.pairs, human_arr, None, fmt, {}, rows.groups, 0)
    llm_arr = np.asarray(rows.llm, dtype=float)
    missing = np.isnan(llm_arr)
    placeholder = np.random.default_rng(seed).random(len(llm_arr)) < 0.5
    a = np.where(missing, placeholder, llm_arr == 1.0)
    tie_arr = np.asarray(rows.tie, bool)
    failed_arr = np.asarray(rows.failed, bool) | (missing & ~tie_arr)
    ev = JudgeEvidence.from_arrays(a, np.asarray(rows.swapped, float), np.asarray(rows.prob, float), tie_arr,
                                   failed_arr, np.asarray(rows.panel, float))
    return LabelledPool(rows.pairs, human_arr, ev, fmt, dict(rows.judge_counts), rows.groups, rows.ties, rows.skipped)


def _panel_view(llm_labels: dict, judges: Sequence[str], key: str | None, ab, ba, first_ab, other,
                label_rule: LabelRule) -> tuple[object, object, float | None]:
    """The primary's (label, other-order verdict) after the panel's label rule, and the panel's
    disagreement with that label: what a deployed judge panel would report for this pair."""
    members = [MemberVerdict(key or "(none)", ab, ba)]
    for pattern in judges[1:]:
        k, v, _ = pick_judge(llm_labels, pattern)
        if k is not None and k != key:
            members.append(MemberVerdict(k, v.get("ab"), v.get("ba")))
    label = first_ab if first_ab in ("a", "b", "tie") else None
    primary = Judgment(label=label, prob=None, status=JudgeStatus.OK, model=key or "(none)", verdict_ab=ab,
                       verdict_ba=ba)
    combined = combine_panel(primary, members, label_rule)
    if combined.label != label and combined.label in ("a", "b"):
        # the majority overrode the primary: its label is the majority's, its own verdicts the evidence
        return combined.label, other, combined.panel_disagreement()
    return first_ab, other, combined.panel_disagreement()


def _text(value: object) -> str:
    """A text field as a string: some records hold JSON scalars (PandaLM has responses that
    are the boolean ``true``); they become their Python string form, None the empty string."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def _chain(first: tuple[int, dict], rest: Iterator[tuple[int, dict]]) -> Iterator[tuple[int, dict]]:
    yield first
    yield from rest
