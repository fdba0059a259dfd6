"""Session-wide real servers: one Label Studio for the whole run, backends per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from label_studio_sdk import LabelStudio

from tests.support.label_studio import LabelStudioServer, start_label_studio


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:
    server = start_label_studio(tmp_path_factory.mktemp("label-studio"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls(label_studio) -> LabelStudio:
    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token, timeout=120)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test session (created fresh, dropped at the end)."""
    from tests.support.postgres import throwaway_database

    with throwaway_database() as url:
        yield url
