"""The Label Studio SDK client and the few project-level calls the backend makes."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)


class LabelStudioNotConfigured(RuntimeError):
    pass


class Traffic:
    """What a client's HTTP traffic tells: how many requests it sent, and Label Studio's clock (the
    ``Date`` header of the newest answer, to the second)."""

    def __init__(self) -> None:
        self.requests = 0
        self.server_time: datetime | None = None
        self._lock = threading.Lock()

    def on_request(self, request: httpx.Request) -> None:
        with self._lock:
            self.requests += 1

    def on_response(self, response: httpx.Response) -> None:
        try:
            when = parsedate_to_datetime(response.headers.get("date", ""))
        except (TypeError, ValueError, IndexError):
            return
        with self._lock:
            self.server_time = when


def make_client(url: str, api_key: str | None, *, timeout: float = 60.0, traffic: Traffic | None = None) -> LabelStudio:
    """An SDK client for Label Studio at ``url`` with ``api_key`` (legacy token or PAT);
    ``traffic`` watches its requests and answers."""
    if api_key is None:
        raise LabelStudioNotConfigured(
            "LABEL_STUDIO_API_KEY is not set: the backend needs a Label Studio access token for this"
        )
    http = None
    if traffic is not None:
        http = httpx.Client(timeout=timeout, follow_redirects=True,
                            event_hooks={"request": [traffic.on_request], "response": [traffic.on_response]})
    return LabelStudio(
        base_url=url.rstrip("/"),
        api_key=api_key,
        timeout=timeout,
        httpx_client=http,
    )


def describe_api_error(exc: Any) -> str:
    """An SDK ``ApiError`` in a few words: Label Studio's ``detail``, or what else answered.

    A proxy, a login page or another web server answers HTML; printing that page helps nobody.
    """
    body = getattr(exc, "body", None)
    status = getattr(exc, "status_code", None)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body
        return f"HTTP {status}: {str(detail)[:200]}"
    text = str(body or "").strip()
    if text[:200].lower().lstrip().startswith(("<!doctype", "<html", "<?xml")) or "<body" in text[:2000].lower():
        return f"HTTP {status} with an HTML page, not Label Studio's API: is LABEL_STUDIO_URL a Label Studio server?"
    return f"HTTP {status}: {' '.join(text.split())[:200]}"


def iter_tasks(ls: LabelStudio, project_id: int, *, query: dict[str, Any] | None = None, include: str | None = None,
               page_size: int = 1000) -> Iterator[dict[str, Any]]:
    """A project's tasks as plain dicts, in id order: with their annotations and predictions, or only
    the fields ``include`` names; ``query`` is a Data Manager query (filters joined by "and").

    Paged by task id, not by page number: each request asks for the next ``page_size`` tasks with
    an id above the last one read, so a task deleted (or added) while the pages are read shifts no
    other task out of the read or into it twice.
    """
    kwargs: dict[str, Any] = {"project": project_id, "page": 1, "page_size": page_size}
    if include is not None:
        kwargs["include"] = include
    else:
        kwargs["fields"] = "all"
    base = dict(query or {})
    filters = dict(base.get("filters") or {"conjunction": "and", "items": []})
    if filters.get("conjunction", "and") != "and":
        raise ValueError("iter_tasks pages by id: its query's filters must be joined by 'and'")
    last_id = 0
    while True:
        after = {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": last_id}
        page_query = {**base, "filters": {"conjunction": "and", "items": [*filters.get("items", []), after]},
                      "ordering": ["tasks:id"]}
        page = ls.tasks.list(**kwargs, query=json.dumps(page_query))
        tasks = [t.model_dump() if hasattr(t, "model_dump") else dict(t) for t in page.items or []]
        yield from tasks
        if len(tasks) < page_size:
            return
        newest = max(int(t["id"]) for t in tasks)
        if newest <= last_id:  # the server ignored the id filter: paging on would repeat this page
            raise RuntimeError(f"Label Studio did not page project {project_id}'s tasks by id")
        last_id = newest


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


def ensure_webhook_auth(ls: LabelStudio, project_id: int, authorization: str) -> int:
    """Put our basic-auth header on the webhooks Label Studio created for this project's ML backends.

    Label Studio creates ``<backend url>/webhook`` itself when a backend is connected, without any
    headers, so a backend behind basic auth would refuse every event. Returns how many of the
    backend's webhooks carry the header now (0: Label Studio has not created one yet).
    """
    backend_hooks = {
        m.url.rstrip("/") + "/webhook" for m in ls.ml.list(project=project_id) if getattr(m, "url", None)
    }
    found = 0
    for hook in ls.webhooks.list(project=str(project_id)):
        if hook.project != project_id or hook.url not in backend_hooks:
            continue
        found += 1
        headers = dict(hook.headers or {})
        if headers.get("Authorization") != authorization:
            headers["Authorization"] = authorization
            ls.webhooks.update(hook.id, headers=headers)
            log.info("project %s: set basic-auth header on webhook %s (%s)", project_id, hook.id, hook.url)
    return found
