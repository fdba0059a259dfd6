"""LLM judges that pre-label pairwise preferences. Which judge a deployment runs, behind which
store, is decided outside the core: :func:`rlthf_backend.app.judges.make_judge`."""

from __future__ import annotations

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.cache import CachedJudge, JudgmentStore

__all__ = ["Judge", "CachedJudge", "JudgmentStore"]
