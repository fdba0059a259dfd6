"""The command line's error boundary: any failure becomes one line naming the problem.

Every ``rlthf-backend`` command runs inside :class:`OneLineErrors`, so bad input (a missing or
unreadable file, a corrupt registry, a setting that cannot work, a server that is not Label
Studio) ends with ``Error: <what>`` on stderr and exit status 1, never a traceback; the
traceback is logged at DEBUG level (``RLTHF_LOG_LEVEL=DEBUG``) for whoever needs it.
"""

from __future__ import annotations

import logging

import click
from pydantic import ValidationError

log = logging.getLogger("rlthf_backend.cli")

#: Longest error line printed (a server's whole error page must not flood the terminal).
MAX_LINE = 400

# Settings read from variables without the RLTHF_ prefix (Label Studio's conventions).
_UNPREFIXED = {"label_studio_url", "label_studio_api_key", "basic_auth_user", "basic_auth_pass", "redis_url",
               "hf_token"}


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."


def _setting_name(loc: tuple) -> str:
    field = str(loc[0]).lower() if loc else ""  # a field name, or the alias the value came by
    return field.upper() if field in _UNPREFIXED else f"RLTHF_{field.upper()}"


def describe(exc: BaseException) -> str:
    """What went wrong, in one line a user can act on."""
    if isinstance(exc, ValidationError):
        problems = []
        for err in exc.errors():
            message = str(err.get("msg", "")).removeprefix("Value error, ")
            loc = tuple(err.get("loc") or ())
            problems.append(f"{_setting_name(loc)}: {message}" if loc else message)
        return _one_line("configuration: " + "; ".join(problems))
    if type(exc).__name__ == "ApiError" and hasattr(exc, "status_code"):  # the Label Studio SDK's
        from rlthf_backend.labelstudio.client import describe_api_error

        return _one_line(f"Label Studio answered {describe_api_error(exc)}")
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return _one_line(f"{exc.strerror}{where}")
    message = str(exc) or type(exc).__name__
    # A ValueError is how this package says "this input is wrong" (naming the input); others keep their type.
    plain = isinstance(exc, (click.ClickException, ValueError)) and not isinstance(exc, UnicodeError)
    return _one_line(message if plain else f"{type(exc).__name__}: {message}")


class OneLineErrors(click.Group):
    """A click group whose commands fail with one line and exit status 1 (click's own usage
    errors keep their status 2; Ctrl-C stays click's "Aborted!")."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # a command's own refusal: kept, on one line
            exc.message = _one_line(exc.message)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            log.debug("the error below, with its traceback", exc_info=True)
            raise click.ClickException(describe(exc)) from None

