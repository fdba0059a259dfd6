"""Opening what a deployment works on: Label Studio, the model registry, the shared database, and
one project with all of them.

The one place where settings meet the adapters: nothing in ``labelstudio/``, ``store/``,
``registry/``, ``jobs/``, ``export/`` or ``report/`` reads settings or builds its own clients,
stores or registries; the training, the pre-labelling, the export, the report, the HTTP routes
and the CLI take what is opened here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from rlthf_backend.app.errors import ProjectError, ProjectNotFound
from rlthf_backend.app.settings import Settings
from rlthf_backend.core.curation import EngineConfig
from rlthf_backend.core.reward.factory import RewardModelSpec
from rlthf_backend.labelstudio.client import LabelStudioNotConfigured, Traffic, describe_api_error, make_client
from rlthf_backend.labelstudio.config import LabelConfigError, PairwiseConfig, parse_label_config
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.store import LEGACY_JUDGMENTS_FILE, DatabaseJudgmentStore, judgment_store
from rlthf_backend.store.database import DatabaseUnavailable, open_database
from rlthf_backend.store.projects import ProjectStore

log = logging.getLogger(__name__)


def label_studio(settings: Settings, *, timeout: float = 60.0, traffic: Traffic | None = None) -> LabelStudio:
    """An SDK client for ``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``; raises
    :class:`LabelStudioNotConfigured` without a key."""
    key = settings.label_studio_api_key.get_secret_value() if settings.label_studio_api_key else None
    return make_client(settings.label_studio_url, key, timeout=timeout, traffic=traffic)


def model_registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.resolved_model_dir, settings.model_title)


def shared_judgment_store(settings: Settings) -> DatabaseJudgmentStore:
    """This process's judgment store (importing an earlier version's cache file once)."""
    return judgment_store(settings.database_url_resolved(), settings.data_dir / LEGACY_JUDGMENTS_FILE)


def project_store(settings: Settings) -> ProjectStore | None:
    """The shared database's project snapshots; None (and a full read) when it cannot be opened."""
    try:
        return ProjectStore(open_database(settings.database_url_resolved()).engine)
    except DatabaseUnavailable as exc:
        log.error("state database unavailable (%s): reading Label Studio whole this time", exc)
        return None


@contextmanager
def label_studio_errors(url: str, project_id: int) -> Iterator[None]:
    """Label Studio failing while a use case works on ``project_id``, as one typed line:
    :class:`ProjectNotFound` for Label Studio's own 404, else :class:`ProjectError`."""
    try:
        yield
    except httpx.TransportError as exc:
        raise ProjectError(f"Label Studio unreachable at {url}: {exc}") from exc
    except ApiError as exc:
        if exc.status_code == 404 and isinstance(exc.body, dict):  # Label Studio's own answer, not a stray page
            raise ProjectNotFound(f"Label Studio has no project {project_id}") from exc
        raise ProjectError(f"Label Studio refused project {project_id}: {describe_api_error(exc)}") from exc


@dataclass
class Project:
    """One Label Studio project, opened: everything a use case needs to work on it."""

    id: int
    settings: Settings
    ls: LabelStudio
    info: Any  # the SDK's project: label config, model_version, counters
    config: PairwiseConfig
    registry: ModelRegistry
    store: ProjectStore | None
    engine: EngineConfig
    reward_model: RewardModelSpec
    traffic: Traffic = field(default_factory=Traffic)  # requests sent, and Label Studio's clock

    def refresh(self) -> Any:
        """Label Studio's project as it is now (counters move while people annotate)."""
        self.info = self.ls.projects.get(id=self.id)
        return self.info


def open_project(settings: Settings, project_id: int, *, timeout: float = 60.0, with_store: bool = False) -> Project:
    """Open ``project_id``: its Label Studio client (``timeout`` per answer), the project and its
    parsed label config, the registry and (``with_store``) the shared snapshot store.

    Raises :class:`ProjectNotFound` when Label Studio has no such project, and
    :class:`ProjectError` with one line saying what is wrong for every other reason it cannot
    be opened (no API key, Label Studio unreachable or refusing, a label config that is not
    pairwise).
    """
    traffic = Traffic()
    try:
        with label_studio_errors(settings.label_studio_url, project_id):
            ls = label_studio(settings, timeout=timeout, traffic=traffic)
            info = ls.projects.get(id=project_id)
        config = parse_label_config(info.label_config)
    except LabelStudioNotConfigured as exc:
        raise ProjectError(str(exc)) from exc
    except LabelConfigError as exc:
        raise ProjectError(f"project {project_id} has no pairwise label config this backend reads: {exc}") from exc
    return Project(
        id=project_id, settings=settings, ls=ls, info=info, config=config, registry=model_registry(settings),
        store=project_store(settings) if with_store else None, engine=settings.engine_config(),
        reward_model=settings.reward_model_spec(), traffic=traffic,
    )
