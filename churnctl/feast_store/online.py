"""User look-ups from the Feast online store, for `POST /predict {"user_id": ...}` in v3.

The same interface as serving's FeatureTable (`get`, `missing_columns`, `path`, `id_column`),
so the API serves from the online store when the newest features artifact was made by the
Feast backend. A row is stale when its feature timestamp is more than the TTL before the newest
materialized day (not the wall clock: the built-in data is historical); stale rows are refused
(409) or answered with `stale: true`, by the features option `stale_features`.

A look-up is one `online_read` per feature view through the store's provider, with the views
resolved from the registry once, here: `FeatureStore.get_online_features` re-resolves the
feature references, converts the entity rows and builds a response proto on every call, which
was ~4/5 of the look-up's time (pyinstrument; bench/results/feast.json has the figures).
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
from churnctl.feast_store.store import public_connection
from churnctl.serving.lookup import LookupRefused
from churnctl.workspace import Workspace


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
        self._categorical = frozenset(schema["categorical"])
        profile = set(PROFILE_NUMERIC) | set(schema["categorical"])
        self.refs = [f"{PROFILE_VIEW if n in profile else ACTIVITY_VIEW}:{n}" for n in self.names]
        self.ttl = timedelta(days=int(meta["ttl_days"]))
        self.newest = datetime.fromisoformat(meta["last_day"]).replace(tzinfo=UTC)
        self.refuse_stale = meta.get("stale_features", "refuse") == "refuse"
        self.users = int(meta.get("latest_users", 0))
        self.where = self.store.config.online_store.type
        self.connection = public_connection(self.store.config.online_store)
        self._views: list[tuple[Any, list[str]]] | None = None

    def __len__(self) -> int:
        return self.users

    def missing_columns(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if name not in self.names]

    def _unavailable(self, exc: Exception) -> LookupRefused:
        text = str(exc).strip().splitlines()
        return LookupRefused(503, f"online feature store ({self.connection}) unavailable: "
                                  f"{type(exc).__name__}: {text[0] if text else ''}")

    def views(self) -> list[tuple[Any, list[str]]]:
        """(FeatureView, its feature names we read), resolved from the registry once."""
        if self._views is None:
            wanted: dict[str, list[str]] = {}
            for ref in self.refs:
                view, name = ref.split(":", 1)
                wanted.setdefault(view, []).append(name)
            self._views = [(self.store.get_feature_view(view), names)
                           for view, names in wanted.items()]
        return self._views

    def read(self, keys: list[int]) -> list[tuple[datetime | None, dict[str, Any]]]:
        """Per key: the newest feature timestamp of its views (None: no row) and its values."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        entity_keys = [EntityKey(join_keys=[JOIN_KEY], entity_values=[Value(int64_val=key)])
                       for key in keys]
        found: list[tuple[datetime | None, dict[str, Any]]] = [(None, {}) for _ in keys]
        try:
            provider, config = self.store.provider, self.store.config
            for view, names in self.views():
                # A fresh list: Feast's Redis store appends its timestamp field to the list it
                # is given (every call made the next HMGET one field longer).
                rows = provider.online_read(config, view, entity_keys, list(names))
                for i, (stamp, values) in enumerate(rows):
                    if stamp is None or values is None:
                        continue
                    fields = {name: values[name].WhichOneof("val") if name in values else None
                              for name in names}
                    if not any(fields.values()):
                        continue  # Redis answers a key it lacks with empty values at epoch 0
                    record = found[i][1]
                    for name, field in fields.items():
                        record[name] = getattr(values[name], field) if field else None
                    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
                    before = found[i][0]
                    found[i] = (stamp if before is None or stamp > before else before, record)
        except LookupRefused:
            raise
        except Exception as exc:  # the store is down (Redis stopped): the API answers 503
            raise self._unavailable(exc) from exc
        return found

    def frame(self, chunk: int = 5_000) -> Any:
        """Every user of the artifact's `latest` table as the online store has them now: the
        id, `as_of` (the feature timestamp, naive UTC like the table's) and the features, in
        the table's column order; users without an online row are left out."""
        import pandas as pd

        ids = [int(u) for u in pd.read_parquet(self.path, columns=[self.id_column])[
            self.id_column].tolist()]
        rows: list[tuple[datetime | None, dict[str, Any]]] = []
        for start in range(0, len(ids), chunk):
            rows += self.read(ids[start:start + chunk])
        kept = [(uid, when, values) for uid, (when, values) in zip(ids, rows, strict=True)
                if when is not None]
        frame = pd.DataFrame({
            self.id_column: pd.array([uid for uid, _, _ in kept], dtype="int64"),
            "as_of": pd.to_datetime([when for _, when, _ in kept], utc=True).tz_localize(None),
            **{name: [values.get(name) for _, _, values in kept] for name in self.names}})
        numeric = [n for n in self.names if n not in self._categorical]
        frame[numeric] = frame[numeric].astype("float64")
        return frame

    def check(self) -> None:
        """Raise LookupRefused(503) when the online store does not answer (for `/ready`)."""
        self.read([0])

    def get(self, user_id: str | int, names: tuple[str, ...]
            ) -> tuple[dict[str, Any], str | None] | None:
        """The user's online feature record and its timestamp, None when the store has no row."""
        try:
            key = int(user_id)  # the entity's join key is an INT64 (churnctl.domain.schema)
        except (TypeError, ValueError):
            return None
        ((when, values),) = self.read([key])
        if when is None:
            return None
        stamp = FeatureTime(when.isoformat())
        if self.newest - when > self.ttl:
            if self.refuse_stale:
                raise LookupRefused(409, f"user_id {user_id!r}: online features are from "
                                         f"{when.date()}, older than the {self.ttl.days}-day "
                                         f"TTL before {self.newest.date()}")
            stamp.stale = True
        return {name: values.get(name) for name in names}, stamp
