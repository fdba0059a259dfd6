"""Debian's headless chromium, driven through the DevTools protocol (a websocket), for page tests.

Only the system browser is used (``/usr/bin/chromium`` from apt); no browser build is downloaded.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ManagedProcess, wait_until

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not found:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    return found


@dataclass
class PageVisit:
    """What a page load left behind: console errors, uncaught exceptions, failed requests."""

    errors: list[str] = field(default_factory=list)
    status: int | None = None


class Browser:
    """One headless chromium with one page, spoken to over the DevTools websocket."""

    def __init__(self, workdir: Path, width: int = 1100, height: int = 900) -> None:
        import websocket  # websocket-client, from the test extra

        self._profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
        self.process = ManagedProcess(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            env={"PATH": "/usr/bin:/bin", "HOME": str(self._profile)}, log_path=workdir / "chromium.log",
        )
        port_file = self._profile / "DevToolsActivePort"
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 60, "chromium's DevTools port")
        port = int(port_file.read_text().split()[0])
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        target = next(p for p in pages if p.get("type") == "page")
        self._ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events arriving meanwhile are kept."""
        self._next_id += 1
        my_id = self._next_id
        self._ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._events.append(msg)

    def _wait_event(self, method: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ev in self._events:
                if ev.get("method") == method:
                    return ev
            self._ws.settimeout(max(0.1, deadline - time.monotonic()))
            self._events.append(json.loads(self._ws.recv()))
        raise TimeoutError(f"no {method} within {timeout_s} s")

    def visit(self, url: str, headers: dict[str, str] | None = None, settle_s: float = 1.0) -> PageVisit:
        """Load ``url`` and report every console error, exception and failed request on the way."""
        if headers:
            self.call("Network.setExtraHTTPHeaders", headers=headers)
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired", 60)
        time.sleep(settle_s)  # late console messages
        self.call("Runtime.evaluate", expression="1")  # drains the events that arrived
        visit = PageVisit()
        for ev in self._events:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
                visit.errors.append("console: " + args)
            elif method == "Runtime.exceptionThrown":
                visit.errors.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                visit.errors.append("log: " + p["entry"].get("text", ""))
            elif method == "Network.loadingFailed":
                visit.errors.append("request failed: " + p.get("errorText", ""))
            elif method == "Network.responseReceived" and p.get("type") == "Document":
                visit.status = p["response"]["status"]
        return visit

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, max_height: int | None = None) -> Path:
        """A PNG of the whole page (beyond the window's height), or of its top ``max_height`` pixels."""
        size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        height = min(size[1], max_height) if max_height else size[1]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size[0], "height": height, "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self.process.stop()
            shutil.rmtree(self._profile, ignore_errors=True)
