"""The direct online read (churnctl.feast_store.fast_read) against Feast's own, on SQLite and a
real Redis: the same values and timestamps for every user, a feature of each value type and a
null, a missing user; a read that differs is refused loudly and Feast's path serves."""

from __future__ import annotations

import logging
import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app
from churnctl.runs import latest_artifact
from churnctl.workspace import Workspace
from tests.conftest import SMALL
from tests.redis_service import redis_server  # noqa: F401  (a session fixture)

pytest.importorskip("feast")
pytestmark = pytest.mark.slow

FEAST = ["--profile", "v1", "--set", "features.backend=feast", *SMALL]
ODD_USER = 10**6  # a user written by hand below, with one feature of each value type


def _run(root: Path, *extra: str) -> None:
    result = CliRunner().invoke(cli_app, ["run", "--json", *FEAST, *extra, "--workspace",
                                          str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, redis_server: str  # noqa: F811
           ) -> dict[str, Path]:
    sqlite = tmp_path_factory.mktemp("fast_sqlite")
    _run(sqlite)
    redis = tmp_path_factory.mktemp("fast_redis") / "ws"
    shutil.copytree(sqlite, redis, symlinks=True)
    _run(redis, "--set", "features.online_store=redis",
         "--set", f"features.redis_connection={redis_server}")
    return {"sqlite": sqlite, "redis": redis}


def _online(root: Path, fast: bool = True, **options: Any) -> Any:
    from churnctl.feast_store.online import OnlineFeatures

    artifact = latest_artifact(Workspace(root), "features")
    return OnlineFeatures(Workspace(root), artifact.meta("feature_store"),
                          artifact.meta("feature_schema"), artifact.table("latest"), "user_id",
                          fast=fast, **options)


def _users(root: Path) -> list[int]:
    table = latest_artifact(Workspace(root), "features").table("latest")
    return [int(u) for u in pd.read_parquet(table, columns=["user_id"])["user_id"]]


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                      and math.isnan(b))


def _assert_equal(online: Any, users: list[int]) -> None:
    """The direct read of each user equals Feast's get_online_features and its online_read."""
    wanted = online._reference(users)
    feast_read = online.read(users)
    for user, (want_when, want), (read_when, read) in zip(users, wanted, feast_read,
                                                          strict=True):
        when, values = online._fast.read_one(user)
        assert when == want_when == read_when, user
        for name in online.names:
            assert _same(values.get(name), want[name]), (user, name, values.get(name))
            assert _same(values.get(name), read.get(name)), (user, name)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_direct_read_equals_feasts_for_every_user(stores: dict[str, Path], kind: str
                                                      ) -> None:
    online = _online(stores[kind])
    assert online.where == kind and online.reader.startswith(f"direct {kind} read (verified")
    users = _users(stores[kind])
    _assert_equal(online, [*users, 10**9, -1, 2**40])
    assert online._fast.read_one(10**9) == (None, {})  # no row


def _write_odd_user(online: Any) -> dict[str, Any]:
    """One user whose values are each kind of bytes the decoders meet: NaN, -0.0, a null, an
    INT64 and a BOOL where a DOUBLE is declared, a string of 300 bytes (a two-byte length),
    non-ASCII text, an empty string. Written through Feast's own online_write_batch."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    odd = {"events_7d": Value(double_val=math.nan), "active_days_7d": Value(double_val=-0.0),
           "logins_7d": Value(), "watch_minutes_7d": Value(int64_val=7),
           "quiz_attempts_7d": Value(bool_val=True), "is_paid": Value(float_val=2.5),
           "plan": Value(string_val="p" * 300), "country": Value(string_val="Zürich ✓"),
           "marketing_source": Value(string_val="")}
    key = EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=ODD_USER)])
    when = datetime(2025, 4, 9, tzinfo=UTC)
    for view, names in online.views():
        values = {name: odd.get(name, Value(double_val=1.25)) for name in names}
        online.store.provider.online_write_batch(
            online.store.config, view, [(key, values, when, None)], None)
    return {"events_7d": math.nan, "active_days_7d": -0.0, "logins_7d": None,
            "watch_minutes_7d": 7, "quiz_attempts_7d": True, "is_paid": 2.5, "plan": "p" * 300,
            "country": "Zürich ✓", "marketing_source": "", "events_30d": 1.25}


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_each_value_type_and_a_null_decode_as_feast_does(stores: dict[str, Path], kind: str
                                                         ) -> None:
    online = _online(stores[kind])
    expected = _write_odd_user(online)
    _assert_equal(online, [ODD_USER])
    when, values = online._fast.read_one(ODD_USER)
    assert when == datetime(2025, 4, 9, tzinfo=UTC)
    for name, value in expected.items():
        assert _same(values[name], value) and type(values[name]) is type(value), name
    assert math.copysign(1, values["active_days_7d"]) == -1


def test_a_direct_read_that_differs_is_refused_loudly(
        stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from churnctl.feast_store import fast_read

    monkeypatch.setattr(fast_read, "_double", lambda blob, parse: 0.5)  # a wrong decoder
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        online = _online(stores["sqlite"])
    assert online._fast is None and "differed from Feast" in online.reader
    (line,) = [r.getMessage() for r in caplog.records if "differs" in r.getMessage()]
    assert "online_read" in line and "user_id" in line
    user = _users(stores["sqlite"])[0]
    record, _ = online.get(user, ("events_30d",))  # served by Feast's path, right
    assert record["events_30d"] == online.read([user])[0][1]["events_30d"] != 0.5
    online.check()
    assert online._fast is None  # a difference is not retried


def test_a_store_down_at_start_is_verified_at_the_next_check(
        stores: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from churnctl.feast_store.online import OnlineFeatures

    real = OnlineFeatures._reference
    calls: list[int] = []

    def down_once(self: Any, users: list[int]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("Connection refused")
        return real(self, users)

    monkeypatch.setattr(OnlineFeatures, "_reference", down_once)
    online = _online(stores["redis"])
    assert online._fast is None and online.reader == "feast online_read"
    user = _users(stores["redis"])[0]
    assert online.get(user, ("plan",)) is not None  # Feast's path meanwhile
    online.check()  # the /ready probe
    assert online._fast is not None and online.reader.startswith("direct redis read")


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_predict_on_the_direct_read(stores: dict[str, Path], kind: str) -> None:
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app

    app = create_app(Workspace(stores[kind]), {"reload_interval_seconds": 0})
    app.state.holder.refresh()
    assert app.state.holder.features.reader.startswith("direct")
    client = TestClient(app)
    slow = _online(stores[kind], fast=False)
    latest = pd.read_parquet(latest_artifact(Workspace(stores[kind]), "features").table("latest"))
    fresh = latest[latest["as_of"] == latest["as_of"].max()]
    user = int(fresh["user_id"].iloc[0])
    answer = client.post("/predict", json={"user_id": user})
    assert answer.status_code == 200, answer.text
    record, stamp = slow.get(user, app.state.holder.current.requests.names)
    assert answer.json()["as_of"] == str(stamp) == "2025-04-10T00:00:00+00:00"
    by_features = client.post("/predict", json={"features": record}).json()
    assert answer.json()["churn_probability"] == by_features["churn_probability"]
    missing = client.post("/predict", json={"user_id": 10**9})
    assert missing.status_code == 404 and "1000000000" in missing.json()["message"]
    rows = pd.read_parquet(stores[kind] / "feature_repo/data/user_features.parquet")
    newest = rows.groupby("user_id")["event_timestamp"].max()
    old = int(newest[newest < newest.max() - pd.Timedelta(days=2)].index[0])  # past the TTL
    stale = client.post("/predict", json={"user_id": old})
    assert stale.status_code == 409 and "TTL" in stale.json()["message"]


def test_sqlite_look_ups_are_cached_until_the_store_changes(stores: dict[str, Path]) -> None:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from churnctl.feast_store import fast_read
    from churnctl.serving.options import ServeOptions

    online = _online(stores["sqlite"])
    reader = online._fast
    user = _users(stores["sqlite"])[3]
    first = reader.read_one(user)
    assert reader.read_one(user) is first  # the second look-up is the cached row
    view, names = next((v, n) for v, n in online.views() if "events_7d" in n)
    when = datetime(2025, 4, 10, tzinfo=UTC)
    # Another connection commits (as a materialization or `stream score` does): the next
    # look-up reads the store again and sees the new value.
    online.store.provider.online_write_batch(online.store.config, view, [(
        EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=user)]),
        {name: Value(double_val=41.5) for name in names}, when, None)], None)
    stamp, values = reader.read_one(user)
    assert values["events_7d"] == 41.5 and stamp is not None and stamp >= when
    _assert_equal(online, [user])  # and it is Feast's answer
    reader.cache_users = 2
    for other in _users(stores["sqlite"])[:5]:
        reader.read_one(other)
    assert len(reader._local.rows) == 2  # bounded: the oldest entries went
    # The serve option online_cache_users reaches the reader; 0 reads the store each time.
    uncached = _online(stores["sqlite"], cache_users=0)._fast
    assert uncached.cache_users == 0
    assert uncached.read_one(user) is not uncached.read_one(user)
    assert uncached.read_one(user) == reader.read_one(user)
    assert ServeOptions().online_cache_users == fast_read.CACHE_USERS


def _write(online: Any, user: int, value: float) -> None:
    """Write the user's events_* view through Feast, as a materialization or `stream score`."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    view, names = next((v, n) for v, n in online.views() if "events_7d" in n)
    online.store.provider.online_write_batch(online.store.config, view, [(
        EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=user)]),
        # Now: Feast's Redis store skips a write no newer than the row it holds.
        {name: Value(double_val=value) for name in names}, datetime.now(UTC), None)], None)


def _eventually(read: Any, value: float) -> Any:
    deadline = time.monotonic() + 5
    while (row := read())[1].get("events_7d") != value and time.monotonic() < deadline:
        time.sleep(0.01)
    return row


def test_redis_look_ups_are_cached_until_redis_reports_a_change(
        stores: dict[str, Path]) -> None:
    online = _online(stores["redis"])
    reader = online._fast
    user, newcomer = _users(stores["redis"])[4], 10**7
    first = reader.read_one(user)
    tracked = reader.tracked
    assert tracked is not None and tracked.alive
    assert reader.read_one(user) is first  # the second look-up is the cached row
    assert reader.read_one(newcomer) == (None, {})  # a user without a row is cached too
    # Another client writes (Feast's own write path): Redis reports the key, the row goes.
    _write(online, user, 42.5)
    stamp, values = _eventually(lambda: reader.read_one(user), 42.5)
    assert values["events_7d"] == 42.5 and stamp is not None
    _assert_equal(online, [user])  # and it is Feast's answer
    _write(online, newcomer, 7.0)
    assert _eventually(lambda: reader.read_one(newcomer), 7.0)[1]["events_7d"] == 7.0
    # The listener's connection ends (Redis restarted, a proxy dropped it): nothing cached is
    # trusted; look-ups read Redis until a new listener is up.
    reader.client.client_kill_filter(_id=tracked.client_id)
    deadline = time.monotonic() + 5
    while tracked.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not tracked.alive and not tracked.rows
    _write(online, user, 43.5)
    assert reader.read_one(user)[1]["events_7d"] == 43.5  # read from Redis, not a stale row
    reader._track_after = 0.0
    reader.read_one(user)
    assert reader.tracked is not tracked and reader.tracked.alive
    listener = reader.tracked
    online.close()  # serving swapped in a newer features artifact: the listener stops
    deadline = time.monotonic() + 5
    while listener.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not listener.alive and reader.read_one(user)[1]["events_7d"] == 43.5
    # cache_users 0 never tracks.
    uncached = _online(stores["redis"], cache_users=0)._fast
    assert uncached.read_one(user) == reader.read_one(user) and uncached.tracked is None


def test_a_change_reported_while_a_row_is_read_keeps_it_out_of_the_cache(
        redis_server: str) -> None:  # noqa: F811
    """The invalidation may overtake the HMGET's reply (another connection): the row read
    before the change must not be cached, or it would be served stale until the next change."""
    import redis

    from churnctl.feast_store.redis_tracking import TrackedRows

    host, port = redis_server.split(":")
    client = redis.Redis(host=host, port=int(port))
    key = b"churnctl-test:overtaken"
    client.hset(key, b"f", b"old")
    tracked = TrackedRows(client, 100)
    tracked.get(key, [b"f"], tuple)  # Redis tracks the key for this client from now on
    client.hset(key, b"f", b"older")
    deadline = time.monotonic() + 5
    while key in tracked.rows and time.monotonic() < deadline:
        time.sleep(0.01)

    def change_while_decoding(blobs: list) -> tuple:
        client.hset(key, b"f", b"new")  # reported before this (now stale) row is stored
        deadline = time.monotonic() + 5
        while tracked.rows.get(key) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        return tuple(blobs)

    try:
        assert tracked.get(key, [b"f"], change_while_decoding) == (b"older",)
        assert key not in tracked.rows
        assert tracked.get(key, [b"f"], tuple) == (b"new",)
    finally:
        tracked.close()
        client.delete(key)
