"""features.spark: the features of features.pandas computed by Spark (churnctl/spark/).

Same options (plus where Spark runs), same tables, same manifest: train reads its input the
same way whichever backend wrote it. Tables are part-directories (`train.parquet/part-*`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from churnctl.backends.features_feast import FeastStoreOptions, feast_services
from churnctl.backends.features_pandas import FEATURE_TABLES, PandasFeatures, PandasFeaturesOptions
from churnctl.spark.options import SparkOptions
from churnctl.stages import ArtifactRef, Backend, StageContext, StageOutput


class SparkFeaturesOptions(PandasFeaturesOptions, SparkOptions, FeastStoreOptions):
    """features.pandas' options, plus where Spark runs and, with `feature_store: feast`,
    features.feast's online store options."""

    feature_store: Literal["none", "feast"] = Field(
        "none", description="feast: the per-user-day table Spark writes is a Feast store's "
        "offline source, materialized into its online store (what serve and stream score use)")


class SparkFeatures(Backend):
    name = "spark"
    stage = "features"
    description = ("features.pandas' windows, labels and time split as Spark DataFrame "
                   "operations (local[*] or a cluster)")
    Options = SparkFeaturesOptions
    extra = "spark"
    modules = ("pyspark", "pandas", "pyarrow")

    @classmethod
    def requirement_problems(cls) -> list[str]:
        from churnctl.spark.session import java_problem

        problem = java_problem()
        return [problem] if problem else []

    @classmethod
    def services(cls, options: dict[str, Any]) -> list[tuple[str, str]]:
        return feast_services(options) if options.get("feature_store") == "feast" else []

    @staticmethod
    def config(opts: SparkFeaturesOptions) -> Any:
        return PandasFeatures.config(opts)

    @staticmethod
    def conf(opts: SparkFeaturesOptions) -> dict[str, str]:
        from churnctl.spark.session import session_conf

        return session_conf(opts.master, "churnctl-features", opts.shuffle_partitions,
                            opts.driver_memory, opts.conf)

    def run(self, ctx: StageContext) -> StageOutput:
        from churnctl.spark.feature_job import run_features
        from churnctl.spark.session import spark_session

        opts = ctx.options
        ingest = ctx.inputs["ingest"]
        feast = opts.feature_store == "feast"
        if feast:
            from churnctl.backends.features_feast import SOURCE_TABLE
            from churnctl.feast_store.reachable import check_redis

            require_feast()  # Backend.modules cannot depend on options: checked here
            check_redis(opts)  # before Spark's work, not after it at publish
        source = SOURCE_TABLE if feast else None
        with spark_session(self.conf(opts), ctx.log, opts.connect_timeout_seconds) as spark:
            result = run_features(spark, str(ingest.table("users")), str(ingest.table("events")),
                                  str(ctx.out_dir), self.config(opts), source=source)
        output = describe(result, self.config(opts))
        output.tables = {name: f"{name}.parquet" for name in FEATURE_TABLES}
        if source is not None:
            from churnctl.backends.features_feast import store_meta

            output.tables[source] = f"{source}.parquet"
            output.meta["feature_store"] = store_meta(
                opts, result.first_source_day or result.last_day, result.last_day,
                result.latest_users)
        return output

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        """With `feature_store: feast`, features.feast's publish: the workspace's feature repo
        over this artifact's source directory, applied and materialized."""
        if ctx.options.feature_store != "feast":
            return {}
        from churnctl.feast_store.publish import publish_store

        return publish_store(ctx.workspace, ctx.options, artifact, ctx.log)


def require_feast() -> None:
    """features.feast's modules, which `feature_store: feast` needs beyond Spark's: one line
    before any work rather than an ImportError at publish."""
    import importlib.util

    from churnctl.backends.features_feast import FeastFeatures
    from churnctl.errors import BackendUnavailable

    missing = [m for m in FeastFeatures.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailable(
            f"features.feature_store feast needs python module {', '.join(missing)}; install "
            f"with: pip install 'churnctl[{FeastFeatures.extra}]'")


def describe(result: Any, config: Any) -> StageOutput:
    """PandasFeatures.describe from the job's counts (the frames stay in Spark)."""
    from churnctl.domain import features as F

    numeric, categorical = F.feature_columns(config)
    split = {"kind": "time", "embargo_days": config.embargo,
             "label_horizon_days": config.label_horizon_days,
             "last_train_snapshot": result.last_train_snapshot,
             "first_test_snapshot": result.first_test_snapshot,
             "static_attributes": "as of each snapshot" if result.has_history
             else "current values (the users table has no valid_from history)"}
    schema = {"id": "user_id", "time": "as_of", "target": F.LABEL, "numeric": numeric,
              "categorical": categorical, "label_horizon_days": config.label_horizon_days,
              "embargo_days": config.embargo, "split": "time, embargoed"}
    return StageOutput(
        meta={"feature_schema": schema, "split": split},
        metrics={"train_rows": result.train_rows, "test_rows": result.test_rows,
                 "train_churn_rate": result.train_churn_rate},
        summary={"snapshot_dates": len(result.snapshot_days),
                 "latest_users": result.latest_users, "embargo_days": config.embargo},
    )
