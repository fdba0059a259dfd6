"""LLM judges that pre-label pairwise preferences, and :func:`make_judge` to pick one."""

from __future__ import annotations

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.cache import CachedJudge, JudgmentCache
from rlthf_backend.settings import Settings

__all__ = ["Judge", "CachedJudge", "JudgmentCache", "make_judge"]


def make_judge(settings: Settings, *, cache: bool = True) -> Judge:
    """The judge selected by ``settings.judge``, behind the judgment cache when it is worth one.

    Nothing heavy happens here: the transformers judge loads its model on first use. Raises
    ValueError for an unknown kind or an unusable prompt template.
    """
    judge: Judge
    if settings.judge == "openai":
        from rlthf_backend.core.judges.openai_judge import OpenAIJudge

        judge = OpenAIJudge(settings)
    elif settings.judge == "transformers":
        # Imported here: it pulls in torch/transformers only for those who use it.
        from rlthf_backend.core.judges.transformers_judge import TransformersJudge

        judge = TransformersJudge(settings)
    elif settings.judge == "precomputed":
        from rlthf_backend.core.judges.precomputed import PrecomputedJudge

        judge = PrecomputedJudge()
    else:
        raise ValueError(f"unknown judge {settings.judge!r}; choose openai, transformers or precomputed")
    if cache and judge.cacheable:
        judge = CachedJudge(judge, JudgmentCache(settings.judgment_cache_path))
    return judge
