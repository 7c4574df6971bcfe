"""Process environment changed for a block and put back after it, whatever the block did."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def scoped_environ(changes: Mapping[str, str | None] | None = None,
                   kept: Iterable[str] = ()) -> Iterator[None]:
    """Set each of `changes` (a str) or remove it (None) for the block; afterwards every
    variable in `changes` and `kept` is as it was before, also those the block changed."""
    changes = changes or {}
    saved = {name: os.environ.get(name) for name in (*changes, *kept)}
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
