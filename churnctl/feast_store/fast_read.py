"""One user's online row in one store round trip, for `POST /predict {"user_id"}` in v3.

Feast's `online_read` costs ~0.12 ms per feature view on the SQLite store (a connection that
converts every row's `event_ts` to a datetime, `itertools.groupby`, the entity key serialized
through protobuf, one query per view) and one pipelined HMGET per view on Redis; serving asks
for one user and two views per request, so that was most of the /predict handler's time
(pyinstrument/cProfile; bench/results/feast.json). Here each store's layout is read directly,
with everything that does not depend on the user computed once:

- SQLite: one `UNION ALL` statement over the views' tables on one read-only connection per
  thread (sqlite3 caches the prepared statement by its text), `event_ts` left an integer;
- Redis: one HMGET of every view's fields, the field names (murmur3 of `view:feature`, Feast's
  `_mmh3`) and `_ts:view` precomputed, on tracked connections made like Feast's client's whose
  rows are kept until Redis reports the key changed (redis_tracking), else on Feast's client;
- the entity key: Feast's serialization of a one-key INT64 entity is a fixed prefix and the
  value's 8 little-endian bytes;
- values: a decoder per feature chosen once from its declared type: a DOUBLE is 9 bytes (its
  tag, then the float) and a short STRING its tag, length and UTF-8, read with `struct` and
  `bytes.decode` (0.4-0.6 us a value against 1.6-1.8 us for `ParseFromString` +
  `WhichOneof` + `getattr`, which any other bytes, a null included, still go through).

The table names, field names and connection come from Feast's own helpers; what is hand-written
(the key, the statement, the per-view timestamps) is checked against Feast's read when the
reader is built (churnctl.feast_store.online: `OnlineFeatures.verify_fast`), and anything that
differs keeps serving on Feast's `online_read`.
"""

from __future__ import annotations

import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any

# The newest feature timestamp (None: no row) and the values; a cached row's dict is shared
# by every look-up of the user: readers copy it, never change it.
Row = tuple[datetime | None, dict[str, Any]]
CACHE_USERS = 10_000  # default of the serve option online_cache_users (~2.5 KB a user)


def entity_key_prefix(join_key: str, version: int) -> bytes:
    """Feast's serialized one-key INT64 entity key without its 8 value bytes."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    zero = serialize_entity_key(EntityKey(join_keys=[join_key], entity_values=[Value(
        int64_val=0)]), entity_key_serialization_version=version)
    if zero[-8:] != bytes(8):
        raise ValueError("Feast's entity key does not end with the INT64 value")
    return zero[:-8]


_PACK_KEY = struct.Struct("<q").pack
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from
_DOUBLE_TAG = 0x29  # field 5 (double_val), wire type 1 (8 bytes): b")" + the double
_STRING_TAG = 0x12  # field 2 (string_val), wire type 2: b"\x12" + a varint length + UTF-8


def _generic(blob: bytes | None, parse: Any) -> Any:
    """A serialized ValueProto's value: None for a missing field or an unset (null) value."""
    if not blob:
        return None
    value = parse()
    value.ParseFromString(blob)
    field = value.WhichOneof("val")
    return None if field is None else getattr(value, field)


def _double(blob: bytes | None, parse: Any) -> Any:
    # The whole message is exactly its one double field: read the 8 bytes, as protobuf would.
    if blob is not None and len(blob) == 9 and blob[0] == _DOUBLE_TAG:
        return _UNPACK_DOUBLE(blob, 1)[0]
    return _generic(blob, parse)


def _string(blob: bytes | None, parse: Any) -> Any:
    # A one-byte varint length (< 128) that covers the rest: the message is that one string.
    if blob is not None and len(blob) > 1 and blob[0] == _STRING_TAG and blob[1] == len(
            blob) - 2 and blob[1] < 0x80:
        return blob[2:].decode()
    return _generic(blob, parse)


def decoders(view: Any, names: list[str]) -> dict[str, Any]:
    """Per feature, the decoder for its declared type (Feast's Field dtype); the generic
    protobuf parse for any other type, and inside these when the bytes are not the one
    field they expect (a null, another type)."""
    from feast.value_type import ValueType

    kinds = {field.name: field.dtype.to_value_type() for field in view.features}
    chosen = {ValueType.DOUBLE: _double, ValueType.STRING: _string}
    return {name: chosen.get(kinds.get(name), _generic) for name in names}


class _Reader:
    kind = ""

    def __init__(self, store: Any, views: list[tuple[Any, list[str]]], join_key: str) -> None:
        from feast.protos.feast.types.Value_pb2 import Value

        self._value = Value
        self.views = views
        self.decode = {}
        for view, names in views:
            self.decode.update(decoders(view, names))
        config = store.config
        self.prefix = entity_key_prefix(join_key, config.entity_key_serialization_version)

    def key(self, user: int) -> bytes:
        return self.prefix + _PACK_KEY(user)

    def read_one(self, user: int) -> Row:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the reader runs in the background (nothing, but on Redis)."""


class SqliteReader(_Reader):
    """Feast's SQLite layout: a table per view, one row per (entity_key, feature_name) with the
    serialized Value and `event_ts` in epoch seconds. `cache_users`: decoded rows a thread
    keeps until the store changes (0: none)."""

    kind = "sqlite"

    def __init__(self, store: Any, views: list[tuple[Any, list[str]]], join_key: str,
                 cache_users: int = CACHE_USERS) -> None:
        from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id

        super().__init__(store, views, join_key)
        config = store.config
        self.path = SqliteOnlineStore._get_db_path(config)
        versioning = config.registry.enable_online_feature_view_versioning
        self.cache_users = cache_users
        self.sql = " UNION ALL ".join(
            f"SELECT {i}, feature_name, value, event_ts FROM "
            f"{_quote_id(_table_id(config.project, view, versioning))} WHERE entity_key = ?1"
            for i, (view, _) in enumerate(views))
        self._local = threading.local()

    def _connection(self) -> Any:
        # sqlite3 connections belong to the thread that made them: the event loop's look-ups
        # and the /ready probe's worker thread each get their own, opened read-only.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import sqlite3
            from urllib.parse import quote

            conn = sqlite3.connect(f"file:{quote(self.path)}?mode=ro", uri=True)
            self._local.conn = conn
        return conn

    def read_one(self, user: int) -> Row:
        """The user's row; repeated look-ups come from this thread's cache of decoded rows
        until any connection commits a change to the store (a materialization, `stream
        score`): SQLite's `data_version` tells, asked on each look-up for ~2 µs. The
        statement and the decoding cost ~60 µs a user (the table keeps one row per feature)."""
        local = self._local
        if self.cache_users <= 0:
            return self._read(user)
        version = self._connection().execute("PRAGMA data_version").fetchone()[0]
        cache = local.__dict__.setdefault("rows", {})
        if version != local.__dict__.get("version"):
            cache.clear()
            local.version = version
        row = cache.get(user)
        if row is None:
            row = self._read(user)
            if len(cache) >= self.cache_users:  # the oldest entry goes: bounded memory
                del cache[next(iter(cache))]
            cache[user] = row
        return row

    def _read(self, user: int) -> Row:
        rows = self._connection().execute(self.sql, (self.key(user),)).fetchall()
        record: dict[str, Any] = {}
        stamps: list[int | None] = [None] * len(self.views)
        present = [False] * len(self.views)  # a view with a non-null value
        parse, decode = self._value, self.decode
        for view, name, blob, stamp in rows:
            decoder = decode.get(name)
            if decoder is None:
                continue  # a feature of the table serving does not read
            value = record[name] = decoder(blob, parse)
            if value is not None:
                present[view] = True
            stamps[view] = stamp
        if not all(present):  # no row, or only nulls: the view adds nothing, as in online.py
            for i, (_, names) in enumerate(self.views):
                if not present[i]:
                    for name in names:
                        record.pop(name, None)
            if not record:
                return None, {}
        newest = max(stamp for stamp, kept in zip(stamps, present, strict=True) if kept)
        # Feast writes naive UTC as int(datetime.timestamp()) (local time) and reads it back
        # with datetime.fromtimestamp (local) tagged UTC: the same here, whatever the TZ.
        return datetime.fromtimestamp(int(newest)).replace(tzinfo=UTC), record


class RedisReader(_Reader):
    """Feast's Redis layout: one hash per entity (serialized key + project), a field per
    feature named by murmur3 of `view:feature`, and a `_ts:view` Timestamp per view."""

    kind = "redis"

    def __init__(self, store: Any, views: list[tuple[Any, list[str]]], join_key: str,
                 cache_users: int = CACHE_USERS) -> None:
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name
        from google.protobuf.timestamp_pb2 import Timestamp

        super().__init__(store, views, join_key)
        config = store.config
        self.project = config.project.encode("utf-8")
        self.fields: list[bytes | str] = []
        self.layout: list[tuple[int, list[str]]] = []  # (start in fields, names) per view
        for view, names in views:
            name = _versioned_fv_name(view, config)
            self.layout.append((len(self.fields), list(names)))
            self.fields += [_mmh3(f"{name}:{feature}") for feature in names]
            self.fields.append(f"_ts:{name}")
        self._timestamp = Timestamp
        online = store.provider.online_store
        self.client = online._get_client(config.online_store)  # Feast's client and its pool
        self.cache_users = cache_users
        self.tracked: Any = None  # redis_tracking.TrackedRows while its listener is up
        self._track_after = 0.0

    def read_one(self, user: int) -> Row:
        """The user's row; with cache_users, from rows Redis has not reported changed since
        (redis_tracking: CLIENT TRACKING), else one HMGET on Feast's client."""
        key = self.key(user) + self.project
        tracked = self.tracked
        if tracked is None or not tracked.alive:
            tracked = self._track()
            if tracked is None:
                return self._decode(self.client.hmget(key, self.fields))
        return tracked.get(key, self.fields, self._decode)

    def _track(self) -> Any:
        """A new TrackedRows, at most every 5 s; None where this client cannot track (a
        cluster or sentinel client, Redis before 6, CLIENT refused, Redis down)."""
        now = time.monotonic()
        if self.cache_users <= 0 or now < self._track_after:
            return None
        self._track_after = now + 5.0
        import redis

        from churnctl.feast_store.redis_tracking import TrackedRows

        if type(self.client) is not redis.Redis or type(
                self.client.connection_pool) is not redis.ConnectionPool:
            self.cache_users = 0  # never: these clients route keys across connections
            return None
        try:
            self.tracked = TrackedRows(self.client, self.cache_users)
        except redis.ResponseError:  # the server refuses tracking: read Redis each time
            self.tracked, self.cache_users = None, 0
        except (redis.RedisError, OSError):  # down now: the next try in 5 s
            self.tracked = None
        return self.tracked

    def close(self) -> None:
        tracked, self.tracked, self.cache_users = self.tracked, None, 0
        if tracked is not None:
            tracked.close()

    def _decode(self, blobs: list[Any]) -> Row:
        newest: datetime | None = None
        record: dict[str, Any] = {}
        parse, decode = self._value, self.decode
        for start, names in self.layout:
            values = [decode[name](blob, parse)
                      for name, blob in zip(names, blobs[start:start + len(names)],
                                             strict=True)]
            if all(value is None for value in values):
                continue  # Redis answers a field it lacks with nil
            stamp = self._timestamp()
            stamp.ParseFromString(blobs[start + len(names)] or b"")
            when = datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=UTC)
            newest = when if newest is None or when > newest else newest
            record.update(zip(names, values, strict=True))
        return newest, record


def fast_reader(store: Any, views: list[tuple[Any, list[str]]], join_key: str,
                cache_users: int = CACHE_USERS) -> _Reader | None:
    """The direct reader for the store's online store type, or None (another store type)."""
    kind = getattr(store.config.online_store, "type", "")
    if kind == "sqlite":
        return SqliteReader(store, views, join_key, cache_users)
    if kind == "redis":  # plain, cluster or sentinel: Feast's client answers HMGET for each
        return RedisReader(store, views, join_key, cache_users)
    return None
