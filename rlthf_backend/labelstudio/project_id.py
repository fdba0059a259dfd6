"""Label Studio project ids as clients send them: one strict parser for every endpoint and job.

Label Studio sends a project as a number (webhooks: ``project.id``), or to ML backends as the
uid ``"<id>.<created timestamp>"`` (``/setup``, ``/versions``); people type it into query strings.
Anything looser (``true``, ``3.9``, ``"1_000"``, ``-1``, ``"²"``, 4,000 digits) is refused
rather than coerced, so it can neither name another project nor reach a file name.
"""

from __future__ import annotations

import re
from typing import Any

#: Label Studio's project ids are 32-bit database keys.
MAX_PROJECT_ID = 2**31 - 1

# ASCII digits only (``str.isdigit`` also accepts "²"), no sign, no leading zero, at most 10 digits.
_ID_RE = re.compile(r"(?P<id>[1-9][0-9]{0,9})\Z")
_UID_RE = re.compile(r"(?P<id>[1-9][0-9]{0,9})\.[0-9]{9,20}\Z")  # "<id>.<unix time>", never "3.9"


class InvalidProjectId(ValueError):
    """Not a Label Studio project id; the message says what was received."""


def parse_project_id(value: Any, *, uid: bool = False) -> int:
    """The project id in ``value``: an int or a decimal string; with ``uid``, also the
    ``"<id>.<timestamp>"`` uid Label Studio sends to ``/setup`` and ``/versions``."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (match := _ID_RE.match(value) or (uid and _UID_RE.match(value))):
        number = int(match["id"])
    if number is None or not 1 <= number <= MAX_PROJECT_ID:
        shown = ascii(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        also = ", or its '<id>.<timestamp>' uid" if uid else ""
        raise InvalidProjectId(
            f"project must be a Label Studio project id (a whole number from 1 to {MAX_PROJECT_ID}{also}), "
            f"got {shown}"
        )
    return number
