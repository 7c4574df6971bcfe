"""Features through a Feast store: the same features, labels and embargoed time split as the
pandas backend, with the training and test sets built by Feast's point-in-time join, and every
user's newest row materialized into an online store (SQLite, or Redis) that serving reads.

The feature values themselves are churnctl.domain.features' (one definition): this backend
writes them per user and day as the store's offline source, and lets Feast join them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from churnctl.backends.features_pandas import FEATURE_TABLES, PandasFeaturesOptions
from churnctl.stages import ArtifactRef, Backend, StageContext, StageOutput

SOURCE_TABLE = "user_features"  # the per-user-day feature table, Feast's offline source


class FeastStoreOptions(BaseModel):
    """Where the Feast online store is and how stale a row may be: declared once, taken by
    features.feast and by features.spark with `feature_store: feast`."""

    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="sqlite: embedded under .churnctl/feast; redis: a running server")
    redis_connection: str = Field(
        "127.0.0.1:6379", description="host:port[,password=...] of the Redis online store")
    ttl_days: int = Field(
        2, ge=1, description="feature views' TTL: an online row older than this, counted from "
        "the newest materialized day, is stale")
    stale_features: Literal["refuse", "flag"] = Field(
        "refuse", description="serving a stale online row: refuse (409) or answer with "
        "`stale: true`")


class FeastFeaturesOptions(PandasFeaturesOptions, FeastStoreOptions):
    """features.pandas' options, plus the Feast online store's."""


def repo_spec(opts: FeastStoreOptions, numeric: list[str], state_dir: str | None = None
              ) -> Any:
    from churnctl.feast_store.repo import RepoSpec

    extra = {"state_dir": state_dir} if state_dir else {}
    return RepoSpec(tuple(numeric), opts.ttl_days, opts.online_store, opts.redis_connection,
                    **extra)


def feast_services(options: dict[str, Any]) -> list[tuple[str, str]]:
    """Redis when the online store is redis (host:port only: a `password=` in the connection
    string is never shown); SQLite is a file in the workspace, nothing to run."""
    if options.get("online_store", "sqlite") != "redis":
        return []
    default = FeastStoreOptions.model_fields["redis_connection"].default
    text = str(options.get("redis_connection") or default)
    hosts = ",".join(part for part in text.split(",") if "=" not in part)
    return [("Redis", f"Feast online store at {hosts}")]


def store_meta(opts: FeastStoreOptions, first_day: str, last_day: str, latest_users: int
               ) -> dict[str, Any]:
    """The features artifact's `feature_store` meta: what says a Feast store holds its
    features (serving/lookup.py, streaming/feast_sink.py read it) and publish_store's window."""
    return {"repo": "feature_repo", "online_store": opts.online_store,
            "ttl_days": opts.ttl_days, "stale_features": opts.stale_features,
            "last_day": last_day, "first_day": first_day, "latest_users": latest_users}


class FeastFeatures(Backend):
    name = "feast"
    stage = "features"
    description = ("pandas features as a Feast store: point-in-time training set, online "
                   "store (SQLite or Redis) for serving")
    Options = FeastFeaturesOptions
    extra = "feast"
    modules = ("feast", "pandas", "pyarrow", "duckdb", "ibis")  # duckdb + ibis: offline store

    @classmethod
    def services(cls, options: dict[str, Any]) -> list[tuple[str, str]]:
        return feast_services(options)

    def run(self, ctx: StageContext) -> StageOutput:
        import tempfile

        import pandas as pd

        from churnctl.backends.features_pandas import PandasFeatures
        from churnctl.domain import features as F
        from churnctl.feast_store import store as S
        from churnctl.feast_store.reachable import check_redis
        from churnctl.feast_store.repo import SOURCE_FILE, TIMESTAMP, write_repo

        opts: FeastFeaturesOptions = ctx.options
        check_redis(opts)  # before the stage's work, not after it at materialize
        config = PandasFeatures.config(opts)
        users = pd.read_parquet(ctx.inputs["ingest"].table("users"))
        events = pd.read_parquet(ctx.inputs["ingest"].table("events"))
        activity, days, labelled = PandasFeatures.labelled(users, events, config)
        numeric, categorical = F.feature_columns(config)
        # The offline source: every user's features on every day they are in the population.
        daily = F.snapshots(activity, users, list(range(days[0], activity.days)), config,
                            with_labels=False)
        source = daily.rename(columns={"as_of": TIMESTAMP})
        source[TIMESTAMP] = S.utc(source[TIMESTAMP])
        source.to_parquet(ctx.out_dir / f"{SOURCE_TABLE}.parquet", index=False)
        entities = labelled[["user_id", "as_of", F.LABEL]]
        train_rows, test_rows = PandasFeatures.split(entities, config)
        last = daily["as_of"].max()
        latest_rows = daily.loc[daily["as_of"] == last, ["user_id", "as_of"]]
        order = list(daily.columns)
        with tempfile.TemporaryDirectory(prefix="churnctl-feast-") as tmp:
            repo = Path(tmp) / "feature_repo"
            write_repo(repo, repo_spec(opts, numeric, state_dir="../state"))
            (repo / SOURCE_FILE).symlink_to((ctx.out_dir / f"{SOURCE_TABLE}.parquet").resolve())
            store = S.open_store(repo, apply=True)
            # One join for all three sets: each join costs a pass over the offline source.
            parts = [train_rows.assign(_part=0), test_rows.assign(_part=1),
                     latest_rows.assign(_part=2, **{F.LABEL: -1})]
            joined = S.historical(store, repo_spec(opts, numeric),
                                  pd.concat(parts, ignore_index=True))
        train, test, latest = (
            joined[joined["_part"] == part][[*order, F.LABEL]].reset_index(drop=True)
            for part in range(3))
        latest = latest.drop(columns=F.LABEL)
        for frame in (train, test):
            frame[F.LABEL] = frame[F.LABEL].astype("int8")
        F.user_daily_table(activity).to_parquet(ctx.out_dir / "user_daily.parquet", index=False)
        for name, frame in (("train", train), ("test", test), ("latest", latest)):
            frame.to_parquet(ctx.out_dir / f"{name}.parquet", index=False)
        output = PandasFeatures.describe(users, config, days, train, test, latest, numeric,
                                         categorical)
        output.tables = {name: f"{name}.parquet" for name in (*FEATURE_TABLES, SOURCE_TABLE)}
        output.meta["feature_store"] = store_meta(
            opts, str(daily["as_of"].min().date()), str(last.date()), len(latest))
        output.summary["offline_rows"] = len(source)
        return output

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        """Regenerate the workspace's feature repo, apply it and materialize (incrementally
        when the online store already holds an earlier end of the same data's history)."""
        from churnctl.feast_store.publish import publish_store

        return publish_store(ctx.workspace, ctx.options, artifact, ctx.log)
