"""features.spark: the features of features.pandas computed by Spark (churnctl/spark/).

Same options (plus where Spark runs), same tables, same manifest: train reads its input the
same way whichever backend wrote it. Tables are part-directories (`train.parquet/part-*`).
"""

from __future__ import annotations

from typing import Any

from churnctl.backends.features_pandas import FEATURE_TABLES, PandasFeatures, PandasFeaturesOptions
from churnctl.spark.options import SparkOptions
from churnctl.stages import Backend, StageContext, StageOutput


class SparkFeaturesOptions(PandasFeaturesOptions, SparkOptions):
    """features.pandas' options, plus where Spark runs."""


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
        with spark_session(self.conf(opts), ctx.log, opts.connect_timeout_seconds) as spark:
            result = run_features(spark, str(ingest.table("users")), str(ingest.table("events")),
                                  str(ctx.out_dir), self.config(opts))
        output = describe(result, self.config(opts))
        output.tables = {name: f"{name}.parquet" for name in FEATURE_TABLES}
        return output


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
