"""Errors users can act on. The CLI prints them as one line and exits with their code."""

from __future__ import annotations


class ChurnctlError(Exception):
    """A known failure: the message says what is wrong and how to fix it."""

    exit_code = 1


class UserError(ChurnctlError):
    """Bad usage or bad input data (exit code 2)."""

    exit_code = 2


class DataError(UserError):
    """An input file or table is unusable; the message names the file and column."""


class GateFailed(UserError):
    """A quality gate (validation, leakage, drift) stopped the run on purpose."""


class BackendUnavailable(UserError):
    """A backend is unknown, not installed, or needs a binary that is missing."""
