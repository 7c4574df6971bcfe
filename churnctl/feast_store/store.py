"""Feast operations of the features stage: load the generated repo, apply it, build training
rows by point-in-time join, and materialize into the online store. Feast is imported here only,
inside functions (it costs ~10 s)."""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnctl.errors import DataError, UserError
from churnctl.feast_store.repo import JOIN_KEY, TIMESTAMP, RepoSpec

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

_LOAD_LOCK = threading.Lock()
_CWD_LOCK = threading.Lock()


# feast.metrics points prometheus_client at a multiprocess directory of its own when imported
# (for Feast's Gunicorn feature server). Left in the environment, it switches churnctl's own
# /metrics, and every server process started from this one, into multiprocess mode.
_PROMETHEUS_ENV = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def quiet_feast() -> None:
    """Import Feast with telemetry off (there is no outside network here) and the process
    environment as it was before (see _PROMETHEUS_ENV). Every use of Feast calls this first."""
    os.environ["FEAST_USAGE"] = "False"
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if "feast.metrics" in sys.modules:
        return
    import prometheus_client  # noqa: F401 - its value class is chosen at import, before Feast's

    from churnctl.environ import scoped_environ

    with scoped_environ(kept=_PROMETHEUS_ENV):
        import feast
        import feast.metrics  # noqa: F401 - the import with the side effect, under our guard


def public_connection(online: Any) -> str:
    """Where the online store is, for messages: Redis's host:port list without its parameters
    (a `password=` must never be shown), or `sqlite` (no filesystem path in an API answer)."""
    if getattr(online, "type", "") == "redis":
        hosts = [part for part in str(online.connection_string).split(",") if "=" not in part]
        return f"redis at {','.join(hosts)}"
    return str(getattr(online, "type", "online"))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def load_definitions(repo: Path) -> list[Any]:
    """The Entity, FileSource and FeatureView objects of the repo's entities.py and features.py.

    Run as Feast's CLI runs them (features.py imports `entities` from the repo), without
    changing the process's directory; an invalid file is one line naming it.
    """
    quiet_feast()
    from feast import Entity, FeatureView

    found: list[Any] = []
    with _LOAD_LOCK:
        saved = sys.modules.pop("entities", None)
        try:
            for name in ("entities.py", "features.py"):
                path = repo / name
                try:
                    namespace = runpy.run_path(str(path))
                except Exception as exc:
                    raise DataError(f"{path}: {_one_line(exc)}") from None
                if name == "entities.py":
                    module = type(sys)("entities")
                    module.__dict__.update(namespace)
                    sys.modules["entities"] = module
                found += [v for v in namespace.values()
                          if isinstance(v, Entity | FeatureView) and v not in found]
        finally:
            sys.modules.pop("entities", None)
            if saved is not None:
                sys.modules["entities"] = saved
    return found


def open_store(repo: Path, apply: bool = False) -> FeatureStore:
    """The repo's FeatureStore; with `apply`, its definitions registered (idempotent)."""
    quiet_feast()
    from feast import FeatureStore

    try:
        store = FeatureStore(repo_path=str(repo))
    except Exception as exc:
        raise DataError(f"{repo / 'feature_store.yaml'}: {_one_line(exc)}") from None
    if apply:
        definitions = load_definitions(repo)
        try:
            with _silenced():
                store.apply(definitions)
        except Exception as exc:
            raise DataError(f"{repo / 'features.py'}: feast apply: {_one_line(exc)}") from None
    return store


@contextlib.contextmanager
def in_repo(store: FeatureStore) -> Any:
    """Run with the repo as the working directory, as Feast's CLI does (`feast apply` chdirs
    into the repo): Feast's DuckDB offline store opens a FileSource's relative path from the
    working directory, and the generated repo keeps its paths relative so a team can commit it.
    Only offline work (the join, materialize) runs in here; serving's online reads never do."""
    with _CWD_LOCK:
        before = os.getcwd()
        os.chdir(store.repo_path)
        try:
            yield
        finally:
            os.chdir(before)


@contextlib.contextmanager
def _silenced() -> Any:
    """Feast prints progress to stdout, which `--json` output must not contain."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def utc(values: pd.Series) -> pd.Series:
    import pandas as pd

    stamps = pd.to_datetime(values)
    return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")


def historical(store: FeatureStore, spec: RepoSpec, entities: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of both feature views onto (user_id, as_of, ...extra columns).

    Rows come back in the entity frame's order, `as_of` naive like the pandas backend's.
    """
    frame = entities.rename(columns={"as_of": TIMESTAMP}).copy()
    frame[TIMESTAMP] = utc(frame[TIMESTAMP])
    frame["_row"] = range(len(frame))
    try:
        with _silenced(), in_repo(store):
            joined = store.get_historical_features(
                entity_df=frame, features=spec.feature_refs()).to_df()
    except Exception as exc:
        raise DataError(f"feast point-in-time join: {_one_line(exc)}") from None
    joined = joined.sort_values("_row", kind="stable").drop(columns="_row").reset_index(drop=True)
    joined[TIMESTAMP] = joined[TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None)
    if str(entities["as_of"].dtype).startswith("datetime64["):  # DuckDB answers in us
        joined[TIMESTAMP] = joined[TIMESTAMP].astype(entities["as_of"].dtype)
    return joined.rename(columns={TIMESTAMP: "as_of"})


def materialize(store: FeatureStore, end: datetime, start: datetime, incremental: bool
                ) -> dict[str, Any]:
    """Load the newest row per user up to `end` into the online store.

    `incremental` uses the end of the previous materialization recorded in the registry as
    the start; otherwise (the first time, or replaced data) the window starts at `start`.
    """
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    online = store.config.online_store
    where = public_connection(online)
    if where == "sqlite":
        where = f"sqlite at {getattr(online, 'path', '')}"
    try:
        with _silenced(), in_repo(store):
            if incremental:
                store.materialize_incremental(end_date=end)
            else:
                store.materialize(start_date=start, end_date=end)
    except Exception as exc:
        raise UserError(f"feast materialize into the online store ({where}): "
                        f"{_one_line(exc)}; start it, or set features.redis_connection / "
                        "features.online_store") from None
    return {"online_store": getattr(online, "type", ""), "start": None if incremental
            else start.isoformat(), "end": end.isoformat(), "incremental": incremental}


def end_of(last_day: pd.Timestamp) -> datetime:
    """Just after the last day's rows (timestamped at midnight) so materialize includes them."""
    return (last_day.to_pydatetime().replace(tzinfo=UTC) + timedelta(seconds=1))


__all__ = ["JOIN_KEY", "end_of", "historical", "in_repo", "load_definitions", "materialize",
           "open_store", "quiet_feast", "utc"]
