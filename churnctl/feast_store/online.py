"""User look-ups from the Feast online store, for `POST /predict {"user_id": ...}` in v3.

The same interface as serving's FeatureTable (`get`, `missing_columns`, `path`, `id_column`),
so the API serves from the online store when the newest features artifact was made by the
Feast backend. A row is stale when its feature timestamp is more than the TTL before the newest
materialized day (not the wall clock: the built-in data is historical); stale rows are refused
(409) or answered with `stale: true`, by the features option `stale_features`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from churnctl.feast_store.repo import (
    ACTIVITY_VIEW,
    JOIN_KEY,
    PROFILE_NUMERIC,
    PROFILE_VIEW,
    REPO_DIR,
)
from churnctl.serving.lookup import LookupRefused
from churnctl.workspace import Workspace

TS_SUFFIX = "__ts"  # feast.online_response.TIMESTAMP_POSTFIX


class FeatureTime(str):
    """The feature timestamp (ISO 8601) of an online row; `stale` past the TTL."""

    stale: bool = False


class OnlineFeatures:
    def __init__(self, workspace: Workspace, meta: dict[str, Any], schema: dict[str, Any],
                 path: Path, id_column: str) -> None:
        from churnctl.feast_store.store import open_store

        self.path, self.id_column = path, id_column
        self.repo = workspace.root / meta.get("repo", REPO_DIR)
        self.store = open_store(self.repo)
        self.names = tuple(schema["numeric"]) + tuple(schema["categorical"])
        profile = set(PROFILE_NUMERIC) | set(schema["categorical"])
        self.refs = [f"{PROFILE_VIEW if n in profile else ACTIVITY_VIEW}:{n}" for n in self.names]
        self.ttl = timedelta(days=int(meta["ttl_days"]))
        self.newest = datetime.fromisoformat(meta["last_day"]).replace(tzinfo=UTC)
        self.refuse_stale = meta.get("stale_features", "refuse") == "refuse"
        self.users = int(meta.get("latest_users", 0))
        self.where = self.store.config.online_store.type

    def __len__(self) -> int:
        return self.users

    def missing_columns(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if name not in self.names]

    def get(self, user_id: str | int, names: tuple[str, ...]
            ) -> tuple[dict[str, Any], str | None] | None:
        """The user's online feature record and its timestamp, None when the store has no row."""
        try:
            key = int(user_id)  # the entity's join key is an INT64 (churnctl.domain.schema)
        except (TypeError, ValueError):
            return None
        try:
            found = self.store.get_online_features(
                features=self.refs, entity_rows=[{JOIN_KEY: key}],
            ).to_dict(include_event_timestamps=True)
        except Exception as exc:  # the store is down (Redis stopped): the API answers 503
            raise LookupRefused(503, f"online feature store ({self.where}) unavailable: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        stamps = [found[f"{name}{TS_SUFFIX}"][0] for name in self.names]
        newest = max(stamps)
        if not newest:
            return None
        when = datetime.fromtimestamp(newest, UTC)
        stamp = FeatureTime(when.isoformat())
        if self.newest - when > self.ttl:
            if self.refuse_stale:
                raise LookupRefused(409, f"user_id {user_id!r}: online features are from "
                                         f"{when.date()}, older than the {self.ttl.days}-day "
                                         f"TTL before {self.newest.date()}")
            stamp.stale = True
        return {name: found[name][0] for name in names}, stamp
