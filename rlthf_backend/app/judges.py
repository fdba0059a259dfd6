"""The judge a deployment runs: settings -> a judge (or a panel of judges) behind the shared
judgment store. The one place where the pure judges of :mod:`rlthf_backend.core.judges` meet the
settings and the database: the judges take config dataclasses, which the settings build
(:meth:`Settings.config_of`, from the knobs of ``app/settings.py``)."""

from __future__ import annotations

import threading

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.cache import CachedJudge, JudgmentStore
from rlthf_backend.core.judges.configs import OpenAIJudgeConfig, TransformersJudgeConfig
from rlthf_backend.core.judges.orders import PromptConfig
from rlthf_backend.app.settings import Settings


def prompt_config(settings: Settings) -> PromptConfig:
    """The prompt every judge of ``settings`` asks (the shared ``judge_*`` settings)."""
    return settings.config_of(PromptConfig)


def openai_judge_config(settings: Settings) -> OpenAIJudgeConfig:
    """The openai judge of ``settings`` (``openai_*`` and the shared ``judge_*`` settings)."""
    return settings.config_of(OpenAIJudgeConfig)


def transformers_judge_config(settings: Settings) -> TransformersJudgeConfig:
    """The transformers judge of ``settings`` (``transformers_*`` and the shared ``judge_*`` settings)."""
    return settings.config_of(TransformersJudgeConfig)


def make_judge(settings: Settings, *, cache: bool = True, store: JudgmentStore | None = None) -> Judge:
    """The judge selected by ``settings.judge`` (or the panel of ``settings.judges``), behind the
    judgment store when it is worth caching (each panel member on its own, by its fingerprint).

    ``store``: where judgments are kept; by default the process's store for ``settings`` (the
    shared database). Nothing heavy happens here: the transformers
    judge loads its model on first use. Raises ValueError for an unknown kind or an unusable
    prompt template.
    """
    if settings.judges:
        from rlthf_backend.core.judges.panel import JudgePanel

        members = [make_judge(member, cache=cache, store=store) for member in panel_member_settings(settings)]
        return members[0] if len(members) == 1 else JudgePanel(members, settings.judge_panel_label)
    judge: Judge
    if settings.judge == "openai":
        from rlthf_backend.core.judges.openai_judge import OpenAIJudge

        judge = OpenAIJudge(openai_judge_config(settings))
    elif settings.judge == "transformers":
        # Imported here: it pulls in torch/transformers only for those who use it.
        from rlthf_backend.core.judges.transformers_judge import TransformersJudge

        judge = TransformersJudge(transformers_judge_config(settings))
    elif settings.judge == "precomputed":
        from rlthf_backend.core.judges.precomputed import PrecomputedJudge

        judge = PrecomputedJudge()
    else:
        raise ValueError(f"unknown judge {settings.judge!r}; choose openai, transformers or precomputed")
    if cache and judge.cacheable:
        if store is None:
            from rlthf_backend.app.project import shared_judgment_store

            store = shared_judgment_store(settings)
        judge = CachedJudge(judge, store)
    return judge


_process_judges: dict[int, tuple[Settings, Judge]] = {}
_process_judges_lock = threading.Lock()


def process_judge(settings: Settings) -> Judge:
    """This process's judge for ``settings`` (one per settings object, made on first use).

    The server and the background jobs running in the same process (embedded mode) share it, and
    so share its request pool: one concurrency bound, and an opened task's prompts ahead of the
    bulk work queued there.
    """
    with _process_judges_lock:
        found = _process_judges.get(id(settings))
        if found is None or found[0] is not settings:
            found = _process_judges[id(settings)] = (settings, make_judge(settings))
        return found[1]


def panel_member_settings(settings: Settings) -> list[Settings]:
    """One settings object per ``settings.judges`` entry (``KIND[:MODEL]``): the kind, and the
    model for that kind (``openai_model`` or ``transformers_model``); everything else shared."""
    members = []
    for entry in (e.strip() for e in (settings.judges or "").split(",")):
        if not entry:
            continue
        kind, _, model = entry.partition(":")
        if kind not in ("openai", "transformers", "precomputed"):
            raise ValueError(f"RLTHF_JUDGES entry {entry!r}: unknown judge kind {kind!r}; "
                             "use openai[:MODEL], transformers[:MODEL] or precomputed")
        update: dict = {"judge": kind, "judges": None}
        if model and kind == "openai":
            update["openai_model"] = model
        elif model and kind == "transformers":
            update["transformers_model"] = model
        elif model:
            raise ValueError(f"RLTHF_JUDGES entry {entry!r}: the precomputed judge takes no model")
        members.append(settings.model_copy(update=update))
    if not members:
        raise ValueError("RLTHF_JUDGES names no judge")
    return members
