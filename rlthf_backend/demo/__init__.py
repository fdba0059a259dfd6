"""A small sample of real preference pairs shipped with the package, for the offline demo.

60 pairs from LLMBar (MIT) and PandaLM (Apache-2.0), each with a human label and a real LLM
judge's verdicts; ``LICENSES.md`` beside this file gives the attribution, how the sample was drawn
and both license texts.
"""

from __future__ import annotations

import json
from importlib import resources

SAMPLE_FILE = "sample_pairs.jsonl"
LICENSES_FILE = "LICENSES.md"


def load_sample_pairs() -> list[dict]:
    """The shipped pairs, in file order.

    Each dict has ``id``, ``source``, ``subset``, ``prompt``, ``response_a``, ``response_b``,
    ``human_label`` (``a``/``b``), ``llm_label`` (the judge's verdict in (A, B) order),
    ``llm_label_swapped`` (its verdict in (B, A) order mapped back to a/b, or ``None``) and
    ``llm_judge`` (which judge).
    """
    text = resources.files(__package__).joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
