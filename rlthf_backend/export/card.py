"""The dataset card (README.md) of an exported ``hf`` dataset: how it was curated, in numbers."""

from __future__ import annotations

from rlthf_backend.export.dataset import CuratedDataset

_SOURCE_MEANING = {
    "human": "a person labelled it (agreeing with the judge, or the judge gave no a/b verdict)",
    "human_overrode_llm": "a person labelled it and contradicted the judge",
    "llm_kept": "the LLM judge's label, kept by the engine",
    "llm_flipped": "the LLM judge's label reversed by the engine (no person looked)",
}


def dataset_card(data: CuratedDataset, title: str | None = None) -> str:
    """Markdown with a YAML header: counts per source, what was left out, the deciding round."""
    n = len(data.rows)
    title = title or f"Curated preference pairs of Label Studio project {data.project_id}"
    human = data.counts.get("human", 0) + data.counts.get("human_overrode_llm", 0)
    lines = [
        "---",
        "tags:",
        "- preference",
        "- rlhf",
        "- rlthf",
        "- label-studio",
        "size_categories:",
        f"- {_size_category(n)}",
        "---",
        "",
        f"# {title}",
        "",
        "Pairwise preferences (`prompt`, `chosen`, `rejected`) curated in Label Studio with rlthf-backend, "
        "after RLTHF ([arXiv 2502.13417](https://arxiv.org/abs/2502.13417)): an LLM judge labels every pair, "
        "a reward model finds the labels it most likely got wrong, people check those.",
        "",
        "## Curation statistics",
        "",
        f"- pairs in the project: {data.pool_size}",
        f"- pairs in this dataset: {n}",
        f"- labelled by people: {human} ({_pct(human, data.pool_size)} of the project)",
        f"- decided by model version `{data.model_version}` (curation round {data.round_index})"
        if data.model_version else "- no curation round had run: LLM and human labels only",
        "",
        "| source | pairs | meaning |",
        "|---|---:|---|",
    ]
    lines += [f"| `{s}` | {data.counts.get(s, 0)} | {m} |" for s, m in _SOURCE_MEANING.items()]
    lines += [
        "",
        f"Ties (column `tie`): {data.counts.get('tie', 0)}; they carry no preference, leave them out "
        "before training (`dataset.filter(lambda r: not r['tie'])`).",
        f"Dropped by the engine as likely mislabelled: {data.left_out.get('dropped', 0)} left out"
        + (f", {data.counts.get('dropped', 0)} kept and marked `dropped`" if data.include_dropped else "") + ".",
    ]
    if data.min_confidence is not None:
        left = data.left_out.get("low_confidence", 0)
        lines.append(f"Rows with confidence below {data.min_confidence} left out: {left}.")
    lines += [
        f"Pairs without any label (no annotation, no judge verdict): {data.left_out.get('no_label', 0)}.",
        "",
        "## Columns",
        "",
        "- `margin`: the reward model's r(chosen) - r(rejected); `rm_margin`: r(a) - r(b).",
        "- `confidence`: P(label right) as the backend estimates it (annotator agreement for people).",
        "- `annotators`, `human_votes`, `agreement`: who labelled and how they agreed.",
        "- `judge_model`, `judge_label`, `judge_prob`, `judge_verdict_ab`, `judge_verdict_ba`: the LLM judge, "
        "asked in both orders.",
        "- `engine_status`, `p_wrong`, `audit`, `round`, `model_version`: what the curation engine decided and when.",
        "",
        "```python",
        "from datasets import load_from_disk",
        "ds = load_from_disk(PATH).filter(lambda r: not r['tie'] and not r['dropped'])",
        "```",
        "",
    ]
    return "\n".join(lines)


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f}%" if n else "n/a"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"
