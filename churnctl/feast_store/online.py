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
Serving's one-user look-ups go further, past `online_read` to the store's own layout in one
round trip (fast_read.py), once that read has given the same answers as Feast's
`get_online_features` for a sample of users; until then, or if it ever differs (logged as an
error), they take the `online_read` path here.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from churnctl.feast_store.fast_read import CACHE_USERS
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

log = logging.getLogger("uvicorn.error")  # shown with the server's own log lines
VERIFY_USERS = 32  # users whose direct read must equal Feast's before it serves

class FeatureTime(str):
    """The feature timestamp (ISO 8601) of an online row; `stale` past the TTL."""

    stale: bool = False


class OnlineFeatures:
    def __init__(self, workspace: Workspace, meta: dict[str, Any], schema: dict[str, Any],
                 path: Path, id_column: str, fast: bool = True,
                 cache_users: int | None = None) -> None:
        from churnctl.feast_store.store import open_store

        self.path, self.id_column = path, id_column
        self.repo = workspace.root / meta.get("repo", REPO_DIR)
        self.store = open_store(self.repo)
        self.names = tuple(schema["numeric"]) + tuple(schema["categorical"])
        self._name_set = frozenset(self.names)  # per request: a set, not the tuple's scan
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
        self._fast: Any = None  # the verified direct reader (fast_read.py), else None
        self._verify_lock = threading.Lock()
        # "feast online_read" until the direct read is verified; why, when it never will be
        self.reader = "feast online_read"
        self._try_fast = fast
        self._cache_users = CACHE_USERS if cache_users is None else cache_users
        if fast:
            self.verify_fast()

    def __len__(self) -> int:
        return self.users

    def missing_columns(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if name not in self._name_set]

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

    def _sample(self) -> list[int]:
        """Users to verify on: spread over the `latest` table, and one id below them all
        (normally no row: the answer for a missing user is compared too)."""
        import pandas as pd

        ids = sorted(int(u) for u in pd.read_parquet(self.path, columns=[self.id_column])[
            self.id_column].tolist())
        step = max(1, len(ids) // VERIFY_USERS)
        return [*ids[::step][:VERIFY_USERS], (ids[0] if ids else 0) - 1]

    def _reference(self, users: list[int]) -> list[tuple[datetime | None, dict[str, Any]]]:
        """Feast's own answer for `users` (get_online_features): per user the newest event
        timestamp of its non-null features and the values, None for every missing one."""
        answer = self.store.get_online_features(
            features=self.refs, entity_rows=[{JOIN_KEY: user} for user in users])
        values, proto = answer.to_dict(), answer.proto
        names = list(proto.metadata.feature_names.val)  # the join key's, then the features'
        rows = []
        for i in range(len(users)):
            record = {name: values[name][i] for name in self.names}
            stamps = [proto.results[j].event_timestamps[i].ToDatetime(tzinfo=UTC)
                      for j, name in enumerate(names)
                      if name in record and record[name] is not None]
            rows.append((max(stamps) if stamps else None, record))
        return rows

    def verify_fast(self) -> bool:
        """Build the direct reader and serve with it once it answers as Feast does for a
        sample of users. A store that does not answer now is tried again by the next
        `check()` (the /ready probe); a difference keeps `online_read` for good."""
        from churnctl.feast_store.fast_read import fast_reader

        with self._verify_lock:
            if self._fast is not None or not self._try_fast:
                return self._fast is not None
            try:
                reader = fast_reader(self.store, self.views(), JOIN_KEY, self._cache_users)
                if reader is None:
                    self._try_fast, self.reader = False, f"feast online_read ({self.where})"
                    return False
                users = self._sample()
                expected = self._reference(users)
                got = [reader.read_one(user) for user in users]
            except Exception as exc:  # the store is down now: try again at the next check
                log.warning("online look-ups: the direct %s read is not verified yet (%s); "
                            "serving through Feast's online_read", self.where,
                            str(self._unavailable(exc)))
                return False
            for user, (when, values), (want_when, want) in zip(users, got, expected,
                                                               strict=True):
                record = {name: values.get(name) for name in self.names}
                if when != want_when or not _same(record, want):
                    differs = [n for n in self.names if not _same({n: record[n]}, {n: want[n]})]
                    self._try_fast = False
                    self.reader = (f"feast online_read (the direct read differed from Feast "
                                   f"for user_id {user})")
                    log.error("online look-ups: the direct %s read differs from Feast's "
                              "get_online_features for user_id %d (timestamp %s vs %s; "
                              "features %s); serving through Feast's online_read",
                              self.where, user, when, want_when, ", ".join(differs[:5]))
                    return False
            self._fast = reader
            self.reader = f"direct {self.where} read (verified on {len(users)} users)"
            log.info("online look-ups: %s", self.reader)
            return True

    def close(self) -> None:
        """Stop the direct reader's background work (Redis's invalidation listener)."""
        if self._fast is not None:
            self._fast.close()

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
        if self._fast is None and self._try_fast:
            self.verify_fast()

    def get(self, user_id: str | int, names: tuple[str, ...]
            ) -> tuple[dict[str, Any], str | None] | None:
        """The user's online feature record and its timestamp, None when the store has no row."""
        try:
            key = int(user_id)  # the entity's join key is an INT64 (churnctl.domain.schema)
        except (TypeError, ValueError):
            return None
        fast = self._fast
        if fast is None:
            ((when, values),) = self.read([key])
        else:
            try:
                when, values = fast.read_one(key)
            except Exception as exc:  # the store is down (Redis stopped): the API answers 503
                raise self._unavailable(exc) from exc
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


def _same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Equal values, NaN equal to NaN (a float feature Feast stored as NaN)."""
    for name, value in want.items():
        mine = got.get(name)
        if mine != value and not (mine != mine and value != value):
            return False
    return True
