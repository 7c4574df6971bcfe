"""The columns the feature backends read from ingest's users and events tables.

One check for every features backend (pandas, Spark), run on the file's schema before any
work, so a missing column reads the same whichever backend the profile picked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from churnctl.errors import DataError

USERS_COLUMNS = ("user_id", "signup_date", "is_paid", "plan", "country", "marketing_source")
EVENTS_COLUMNS = ("user_id", "event_time", "event_type", "watch_minutes", "quiz_score")


def require_columns(path: str | Path, have: Iterable[str], needed: tuple[str, ...]) -> None:
    """DataError naming the file, the missing columns and the columns it has."""
    present = list(have)
    missing = [name for name in needed if name not in present]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} that the features "
                        f"stage needs; the file has {', '.join(present) or 'no columns'}; "
                        "re-run ingest or add the column to the export")


def parquet_columns(path: Path) -> list[str]:
    """Column names of a Parquet file or part-directory, read from its schema only."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    return list(schema.names)


def check_parquet_inputs(users: Path, events: Path) -> None:
    require_columns(users, parquet_columns(users), USERS_COLUMNS)
    require_columns(events, parquet_columns(events), EVENTS_COLUMNS)
