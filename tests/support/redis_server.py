"""A private Redis server per test module: tests may stop it without touching anyone else's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from tests.support.processes import ManagedProcess, free_port, wait_until


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._exe = exe
        self.process: ManagedProcess | None = None
        self.start()

    def start(self) -> None:
        self.process = ManagedProcess(
            [self._exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            env={}, log_path=self.workdir / f"redis-{self.port}.log",
        )
        wait_until(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 15, "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)
