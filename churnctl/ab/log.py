"""The append-only assignment log: one JSON line per scored request, joined to outcomes later.

Each line is written with a single write() on a file opened with O_APPEND, so lines from
concurrent requests and worker processes never interleave (each line is far below PIPE_BUF).
Nothing is ever rewritten; the report reads each customer's first assignment.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.errors import UserError


class AssignmentLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def append(self, customer_id: Any, variant: str, model_version: int | None,
               probability: float | None) -> None:
        line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                           "customer_id": customer_id, "variant": variant,
                           "model_version": model_version, "probability": probability},
                          separators=(",", ":")) + "\n"
        with self._lock:
            os.write(self._fd, line.encode())

    def close(self) -> None:
        os.close(self._fd)


def read_assignments(path: Path) -> dict[str, str]:
    """customer id (as text) -> variant of the first line naming it."""
    if not path.is_file():
        raise UserError(f"no assignment log at {path}: serve the A/B test first "
                        "(`churnctl serve --profile v4`)")
    first: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.endswith("\n"):
                break  # a line still being written: not yet part of the log
            try:
                row = json.loads(line)
                first.setdefault(str(row["customer_id"]), str(row["variant"]))
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{path}:{number}: not an assignment line") from None
    return first
