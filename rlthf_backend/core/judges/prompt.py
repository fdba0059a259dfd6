"""The judge prompt: the template, truncation of long texts, and strict parsing of the answer.

The same template serves every LLM judge. It asks for a short justification followed by a final
line ``Preference: A`` or ``Preference: B``; :func:`parse_verdict` accepts nothing else, so a
judge that rambles, hedges or answers "both" is recorded as ``parse_failed`` instead of being
guessed at.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

#: Placeholders a template may use; the last three are required.
PLACEHOLDERS = ("criteria", "prompt", "response_1", "response_2")
REQUIRED_PLACEHOLDERS = ("prompt", "response_1", "response_2")

#: Default judging criteria, after the HHH framing used by RLTHF and most preference datasets.
DEFAULT_CRITERIA = "helpfulness, honesty and harmlessness"

#: What the answer line starts with; the transformers judge puts it in the model's mouth.
ANSWER_PREFIX = "Preference:"

DEFAULT_TEMPLATE = """\
You are an impartial judge comparing two AI assistant responses to the same user prompt.
Decide which response is better according to these criteria: {criteria}.
Judge only the quality of the responses. Do not let their order, their length or the names of \
the assistants influence you.

[User prompt]
{prompt}
[End of user prompt]

[Response A]
{response_1}
[End of response A]

[Response B]
{response_2}
[End of response B]

Briefly explain your reasoning, then finish with a final line that is exactly \
"Preference: A" if response A is better, or "Preference: B" if response B is better."""

_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

#: The final line: "Preference: A", tolerating markdown emphasis, brackets and a full stop,
#: because chat models add them habitually; the letter itself must stand alone. What follows the
#: letter is checked without a regular expression (see :func:`parse_verdict`), so no two
#: quantifiers here can match the same characters: matching is linear in the line's length.
_ANSWER_RE = re.compile(
    r"^[*_#\s]*preference[*_\s]*:[*_\s]*[\[(\"']?(?P<letter>[AB])[\])\"']?(?P<tail>.*)$",
    re.IGNORECASE,
)
#: Emphasis and spaces a verdict line may end with (around at most one full stop).
_ANSWER_TAIL_DECORATION = "*_ \t\r\f\v"
#: A verdict line longer than this is not one ("Preference: A" with generous decoration).
MAX_VERDICT_LINE = 200

#: A line of the template that is a bracketed section marker, e.g. "[End of response A]".
_MARKER_LINE_RE = re.compile(r"^\[([^\[\]{}\n]+)\]$")

TRUNCATION_MARK = "\n[... {n} characters omitted ...]\n"


def load_template(path: Path | None) -> str:
    """The template text: the file at ``path`` when given, else :data:`DEFAULT_TEMPLATE`.

    Raises ValueError (a configuration error) when a required placeholder is missing, because a
    template without ``{response_2}`` would silently judge one response against nothing.
    """
    if path is None:
        return DEFAULT_TEMPLATE
    text = Path(path).read_text(encoding="utf-8")
    missing = [p for p in REQUIRED_PLACEHOLDERS if "{" + p + "}" not in text]
    if missing:
        raise ValueError(
            f"judge prompt template {path} lacks the placeholder(s) "
            + ", ".join("{" + p + "}" for p in missing)
        )
    return text


def template_hash(template: str) -> str:
    """A short hash of the template text, recorded in judge configs (so in cache keys)."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_chars`` characters, and whether it was cut.

    Keeps the head and the tail (three quarters / one quarter) around a marker that says how
    much was dropped: the end of a response often carries its final answer, so a head-only cut
    would hide exactly what a judge needs.
    """
    if len(text) <= max_chars:
        return text, False
    mark = TRUNCATION_MARK.format(n=len(text))  # upper bound on the digits the real count needs
    keep = max_chars - len(mark)
    if keep <= 0:  # absurdly small limit: a plain head cut is all that fits
        return text[:max_chars], True
    head = keep * 3 // 4
    tail = keep - head
    omitted = len(text) - head - tail
    return text[:head] + TRUNCATION_MARK.format(n=omitted) + (text[-tail:] if tail else ""), True


@lru_cache(maxsize=16)
def _marker_imitations(template: str) -> re.Pattern[str] | None:
    """What in a task text would imitate the template's own section markers, or None."""
    markers = {m.group(1) for line in template.splitlines() if (m := _MARKER_LINE_RE.match(line.strip()))}
    if not markers:
        return None
    words = sorted((r"\s+".join(map(re.escape, inner.split())) for inner in markers), key=len, reverse=True)
    return re.compile(r"\[\s*(?:" + "|".join(words) + r")\s*\]", re.IGNORECASE)


@dataclass(frozen=True)
class RenderedPrompt:
    """One filled-in prompt, and whether any of its texts had to be truncated."""

    text: str
    truncated: bool


def render(
    template: str,
    *,
    criteria: str,
    prompt: str,
    response_1: str,
    response_2: str,
    max_chars: int,
) -> RenderedPrompt:
    """Fill the template, truncating each text to ``max_chars`` first.

    Substitution is a single pass over the template's own placeholders, so braces inside the
    user's texts (code, JSON) are copied verbatim and never re-interpreted, and literal braces in
    a custom template need no escaping. A text that imitates one of the template's section
    markers (``[End of response A]``, in any case or spacing) gets parentheses instead of its
    brackets, so it cannot close its section and open a fake one.
    """
    values: dict[str, str] = {"criteria": criteria}
    cut = False
    defuse = _marker_imitations(template)
    for name, text in (("prompt", prompt), ("response_1", response_1), ("response_2", response_2)):
        if defuse is not None:
            text = defuse.sub(lambda m: "(" + m.group(0)[1:-1] + ")", text)
        values[name], was_cut = truncate(text, max_chars)
        cut = cut or was_cut
    filled = _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)
    return RenderedPrompt(filled, cut)


@dataclass(frozen=True)
class ParsedAnswer:
    """The verdict read from a judge's answer: ``"A"``/``"B"`` (the shown positions) or None.

    ``letter_offset`` is the character index of the letter in the answer (used to find the
    answer token among returned logprobs); ``reason`` says why parsing failed.
    """

    letter: Literal["A", "B"] | None
    letter_offset: int | None = None
    reason: str | None = None


def excerpt(text: str, limit: int = 80) -> str:
    """A one-line excerpt for error messages: the last ``limit`` characters, newlines escaped."""
    text = text.strip()
    short = text if len(text) <= limit else "..." + text[-limit:]
    return short.replace("\n", "\\n")


def parse_verdict(answer: str | None) -> ParsedAnswer:
    """Read the final ``Preference: A|B`` line of a judge's answer, strictly.

    Only the last non-blank line counts; anything else there (no such line, "A or B", "tie",
    "Preference: C") fails with a reason that quotes the end of the answer.
    """
    if answer is None or not answer.strip():
        return ParsedAnswer(None, reason="empty answer")
    stripped = answer.rstrip()
    start = stripped.rfind("\n") + 1
    last_line = stripped[start:]
    match = _ANSWER_RE.match(last_line) if len(last_line) <= MAX_VERDICT_LINE else None
    tail = match.group("tail").strip(_ANSWER_TAIL_DECORATION) if match else None
    if match is None or tail not in ("", "."):
        return ParsedAnswer(
            None,
            reason=f'answer does not end with "Preference: A" or "Preference: B": "{excerpt(answer)}"',
        )
    letter = match.group("letter").upper()
    return ParsedAnswer(letter, start + match.start("letter"))  # type: ignore[arg-type]


def clip_raw(text: str, limit: int = 2000) -> str:
    """A raw answer as stored in a judgment: at most ``limit`` characters (head and tail kept)."""
    return truncate(text, limit)[0]
