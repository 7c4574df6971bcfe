"""Errors users can act on. The CLI prints them as one line and exits with their code."""

from __future__ import annotations

from typing import Any

MAX_MESSAGE = 2000  # an error is one line; a 10 MB cell must not become a 10 MB message


def bounded(text: str, limit: int) -> str:
    """`text` cut in the middle to at most `limit` characters."""
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def shorten(value: Any, limit: int = 80) -> str:
    """repr() of a value from the data, cut in the middle when longer than `limit`."""
    return bounded(repr(value) if not isinstance(value, BaseException) else str(value), limit)


class ChurnctlError(Exception):
    """A known failure: the message says what is wrong and how to fix it.

    Messages are bounded (MAX_MESSAGE): whatever a caller interpolates, the error printed,
    recorded in the run record and returned by the API stays one readable line."""

    exit_code = 1

    def __init__(self, *args: Any) -> None:
        if args and isinstance(args[0], str):
            args = (bounded(args[0], MAX_MESSAGE), *args[1:])
        super().__init__(*args)


class UserError(ChurnctlError):
    """Bad usage or bad input data (exit code 2)."""

    exit_code = 2


class DataError(UserError):
    """An input file or table is unusable; the message names the file and column."""


class GateFailed(UserError):
    """A quality gate (validation, leakage, drift) stopped the run on purpose."""


class BackendUnavailable(UserError):
    """A backend is unknown, not installed, or needs a binary that is missing."""
