"""The model registry: one folder per project, one sub-folder per published version.

A version is written into a hidden temporary folder and renamed into place only when complete,
then the project's ``LATEST`` file is replaced atomically. A training killed half-way leaves at
most a temporary folder (removed by the next publish), never a half-written version, and readers
in any process (gunicorn workers, RQ workers) see the new version on their next read: nothing
is cached across calls except by version id, which never changes meaning.

Layout::

    <root>/project-<id>/LATEST            the newest version id
    <root>/project-<id>/<version>/meta.json
    <root>/project-<id>/<version>/...     whatever the writer put there (rm/, round.json...)
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^(?P<title>[\w.-]+)-p(?P<project>\d+)-v(?P<number>\d{4,})$")


class RegistryError(ValueError):
    """A registry file exists but cannot be read (corrupt, or not written by this backend)."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    number: int
    path: Path
    meta: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON in one rename (readers see old or new, never half)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ModelRegistry:
    def __init__(self, root: Path, title: str = "rlthf") -> None:
        self.root = Path(root)
        self.title = title

    def project_dir(self, project_id: int) -> Path:
        return self.root / f"project-{int(project_id)}"

    def versions(self, project_id: int) -> list[VersionInfo]:
        """Published versions, oldest first. A version folder whose ``meta.json`` is missing (an
        interrupted copy) or unreadable is left out, with a warning naming it."""
        out = []
        for number, path in self._version_folders(project_id):
            if not (path / "meta.json").is_file():
                continue
            try:
                out.append(self._info(path, number))
            except RegistryError as exc:
                log.warning("registry: leaving out version %s (%s)", path.name, exc)
        return out

    def _version_folders(self, project_id: int) -> list[tuple[int, Path]]:
        """Every folder named like one of the project's versions, complete or not, by number."""
        pdir = self.project_dir(project_id)
        if not pdir.is_dir():
            return []
        found = []
        for child in pdir.iterdir():
            m = _VERSION_RE.match(child.name)
            if m and int(m["project"]) == int(project_id) and child.is_dir():
                found.append((int(m["number"]), child))
        return sorted(found)

    def latest(self, project_id: int) -> VersionInfo | None:
        """The newest published version (the one ``LATEST`` names), or None."""
        pdir = self.project_dir(project_id)
        try:
            name = (pdir / "LATEST").read_text().strip()
        except FileNotFoundError:
            return None
        m = _VERSION_RE.match(name)
        path = pdir / name
        if m and (path / "meta.json").is_file():
            try:
                return self._info(path, int(m["number"]))
            except RegistryError as exc:
                log.warning("registry: LATEST names a damaged version (%s); using the newest intact one", exc)
        # LATEST names a pruned, foreign or damaged folder: fall back to the newest complete one.
        versions = self.versions(project_id)
        return versions[-1] if versions else None

    def get(self, project_id: int, version: str) -> VersionInfo | None:
        m = _VERSION_RE.match(version)
        path = self.project_dir(project_id) / version
        if not m or not (path / "meta.json").is_file():
            return None
        return self._info(path, int(m["number"]))

    def publish(
        self, project_id: int, write: Callable[[Path, str], None], meta: dict[str, Any] | None = None
    ) -> VersionInfo:
        """Write a new version with ``write(folder, version_id)`` and make it the latest, atomically.

        Callers serialise publishes per project (the training job holds the project's lock);
        the version number is one more than the newest on disk.
        """
        pdir = self.project_dir(project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp(pdir)
        # Numbered past every version-like folder, complete or not: a folder an interrupted copy left
        # without meta.json must never be in the way of the rename below.
        existing = self._version_folders(project_id)
        number = (existing[-1][0] + 1) if existing else 1
        version = f"{self.title}-p{int(project_id)}-v{number:04d}"
        tmp = pdir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write(tmp, version)
            full_meta = {"version": version, "project": int(project_id), "created_at": time.time(), **(meta or {})}
            write_json_atomic(tmp / "meta.json", full_meta)
            _fsync_dir(tmp)
            os.rename(tmp, pdir / version)
            _fsync_dir(pdir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp_latest = pdir / f".LATEST.{uuid.uuid4().hex}"
        tmp_latest.write_text(version)
        os.replace(tmp_latest, pdir / "LATEST")
        return self._info(pdir / version, number)

    def named_version(self, project_id: int, version: str | None) -> bool:
        """Whether ``version`` is a name this registry gives the project's versions (kept or pruned)."""
        m = _VERSION_RE.match(version or "")
        return m is not None and m["title"] == self.title and int(m["project"]) == int(project_id)

    def prune(self, project_id: int, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` versions; returns the deleted version ids."""
        versions = self.versions(project_id)
        latest = self.latest(project_id)
        doomed = [v for v in versions[: max(0, len(versions) - keep)] if latest is None or v.version != latest.version]
        for v in doomed:
            shutil.rmtree(v.path, ignore_errors=True)
        return [v.version for v in doomed]

    @staticmethod
    def _info(path: Path, number: int) -> VersionInfo:
        meta_file = path / "meta.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{meta_file}: unreadable ({exc}); move the folder {path.name} away to fall "
                                "back to the version before it") from exc
        if not isinstance(meta, dict):
            raise RegistryError(f"{meta_file}: expected a JSON object, found {type(meta).__name__}")
        return VersionInfo(version=path.name, number=number, path=path, meta=meta)

    @staticmethod
    def _remove_stale_tmp(pdir: Path, older_than_s: float = 6 * 3600) -> None:
        # A killed publish leaves .tmp-* behind; only old ones go, a live publish may own a new one.
        now = time.time()
        for child in pdir.glob(".tmp-*"):
            try:
                if now - child.stat().st_mtime > older_than_s:
                    shutil.rmtree(child, ignore_errors=True)
            except FileNotFoundError:
                pass
