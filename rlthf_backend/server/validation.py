"""The one request-validation layer: every endpoint reads its input through these functions.

They turn whatever a client sent into plain values or a :class:`BadRequest` (answered 400 with
the reason), so no malformed input reaches code that could fail on it with a 500: bodies are
size-limited before they are read (Flask's ``MAX_CONTENT_LENGTH``, answered 413), JSON is
parsed with bounded nesting and bounded, finite numbers, and project ids go through the one
parser in :mod:`rlthf_backend.labelstudio.project_id`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import request

from rlthf_backend.labelstudio.config import LabelConfigError, PairwiseConfig, parse_label_config
from rlthf_backend.labelstudio.project_id import InvalidProjectId, parse_project_id

#: Deepest JSON nesting accepted (Label Studio's payloads are under 10 levels deep).
MAX_JSON_DEPTH = 64
#: Longest number literal accepted: ids and timestamps have at most 20 digits.
MAX_NUMBER_CHARS = 40
#: Longest webhook ``action``: Label Studio's are under 30 characters.
MAX_ACTION_CHARS = 64


class BadRequest(Exception):
    """A request the backend cannot act on; answered as 400 with the message."""


def _number_literal(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadRequest(f"a number in the request body has {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return text


def _parse_int(text: str) -> int:
    return int(_number_literal(text))


def _parse_float(text: str) -> float:
    value = float(_number_literal(text))
    if not math.isfinite(value):
        raise BadRequest(f"the number {text} in the request body is out of range")
    return value


def _no_constants(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number")


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_json(raw: bytes | str) -> Any:
    """Strict JSON: no NaN/Infinity, numbers of bounded length, bounded nesting."""
    try:
        value = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    _check_depth(value)
    return value


def json_body() -> dict[str, Any]:
    """The request's JSON object, or BadRequest."""
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("empty request body: expected a JSON object")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def optional_json_body() -> dict[str, Any]:
    """Label Studio sends ``GET /versions`` with a JSON body; tolerate none or a bad one."""
    raw = request.get_data(cache=True)
    try:
        body = parse_json(raw) if raw else None
    except BadRequest:
        return {}
    return body if isinstance(body, dict) else {}


def project_id(value: Any, *, where: str = "project", uid: bool = False) -> int:
    """A project id from anything a client sent, or BadRequest naming the field."""
    try:
        return parse_project_id(value, uid=uid)
    except InvalidProjectId as exc:
        raise BadRequest(f"{where}: {exc}") from None


def optional_project_id(value: Any, *, where: str = "project", uid: bool = False) -> int | None:
    return None if value is None or value == "" else project_id(value, where=where, uid=uid)


def query_project_id(required: bool = True) -> int | None:
    """``?project=ID`` (required or optional)."""
    raw = request.args.get("project")
    if not raw and required:
        raise BadRequest("the query parameter 'project' is required, e.g. ?project=1")
    return optional_project_id(raw, where="?project")


def label_config(value: Any) -> PairwiseConfig:
    """``schema`` (``/setup``) or ``label_config`` (``/predict``): a pairwise config we can read."""
    try:
        return parse_label_config(value)
    except LabelConfigError as exc:
        raise BadRequest(f"unsupported label config: {exc}") from exc


def tasks_list(value: Any) -> list[dict[str, Any]]:
    """``/predict``'s tasks: a list of objects (each task's own fields fail alone, in its result)."""
    if not isinstance(value, list):
        raise BadRequest("'tasks' must be a list of Label Studio tasks")
    if not all(isinstance(t, dict) for t in value):
        raise BadRequest("every item of 'tasks' must be a JSON object")
    return value


def extra_params(value: Any) -> dict[str, Any]:
    """``extra_params`` arrives as stored in Label Studio: an object, a JSON string, or nothing."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = parse_json(value)
        except BadRequest as exc:
            raise BadRequest(f"extra_params: {exc}".replace("request body", "the text")) from None
    if not isinstance(value, dict):
        raise BadRequest(f"extra_params must be a JSON object, got {type(value).__name__}")
    return value


def webhook_action(body: dict[str, Any]) -> str:
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("webhook body has no 'action'")
    if len(action) > MAX_ACTION_CHARS:
        raise BadRequest(f"webhook 'action' is {len(action)} characters long (at most {MAX_ACTION_CHARS})")
    return action


def webhook_project_id(body: dict[str, Any]) -> int | None:
    """The event's project: ``project`` as an object with ``id``, or the id itself; None if absent."""
    project = body.get("project")
    value = project.get("id") if isinstance(project, dict) else project
    return optional_project_id(value, where="webhook project")
