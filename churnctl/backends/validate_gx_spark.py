"""validate.gx-spark: validate.gx's Great Expectations suite run on Spark DataFrames.

The same suites (one per table, generated from the data contract into the workspace's `gx/`,
with the expectations a user added), run by checkpoints on GX's Spark data source
(`churnctl_spark`, whole-dataframe batches) over the ingest artifact's Parquet read by Spark;
the same gate, report, failure line and Data Docs as validate.gx. What validate.gx computes
in pandas before GX sees the batch (the unknown-user and signup-day columns, the date
window's "today") is computed by Spark here (quality_gx/spark_batches.py).

Every expectation of the suite runs on Spark in GX 1.x, the column-pair after_signup check
included (GX's Spark form of a_greater_than_b with or_equal also accepts two nulls; the
suite's ignore_row_if drops those rows first, so the verdict is pandas'). Type expectations
name pyspark types besides the pandas dtypes (contract.TYPE_LISTS).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from churnctl.backends.validate_gx import DOCS, GxValidator, GxValidatorOptions, gate
from churnctl.errors import BackendUnavailable
from churnctl.spark.options import SparkOptions
from churnctl.stages import StageContext, StageOutput


class GxSparkValidatorOptions(GxValidatorOptions, SparkOptions):
    """validate.gx's options, plus where Spark runs."""


class GxSparkValidator(GxValidator):
    name = "gx-spark"
    stage = "validate"
    description = ("validate.gx's Great Expectations suite and checkpoints on Spark "
                   "DataFrames, Data Docs")
    Options = GxSparkValidatorOptions
    extra = "gx,spark"
    modules = ("great_expectations", "pyspark", "pandas", "pyarrow")

    @classmethod
    def requirement_problems(cls) -> list[str]:
        from churnctl.spark.session import java_problem

        problem = java_problem()
        return [problem] if problem else []

    def run(self, ctx: StageContext) -> StageOutput:
        from churnctl.spark.session import check_master, java_problem, session_conf, spark_session

        opts: GxSparkValidatorOptions = ctx.options
        problem = java_problem()
        if problem:
            raise BackendUnavailable(f"validate.gx-spark needs {problem}")
        # Checked here to name validate.master in the message; spark_session checks again.
        check_master(opts.master, opts.connect_timeout_seconds, stage="validate")
        conf = session_conf(opts.master, "churnctl-validate", opts.shuffle_partitions,
                            opts.driver_memory, opts.conf)
        with spark_session(conf, ctx.log, opts.connect_timeout_seconds) as spark:
            return self._validate(ctx, spark, opts)

    def _validate(self, ctx: StageContext, spark: Any, opts: GxSparkValidatorOptions,
                  ) -> StageOutput:
        import pandas as pd

        from churnctl.quality_gx.contract import event_data_specs
        from churnctl.quality_gx.gate import event_parameters, run_checkpoints
        from churnctl.quality_gx.project import SPARK
        from churnctl.quality_gx.spark_batches import event_days, events_batch, read_table

        ingest = ctx.inputs["ingest"]
        frames = {t: read_table(spark, str(ingest.table(t))) for t in ("users", "events")}
        suites = event_data_specs({t: list(f.columns) for t, f in frames.items()},
                                  min_rows=opts.min_rows, max_rows=opts.max_rows)
        parameters = event_parameters(
            pd.DataFrame(), event_days(frames["events"]),
            earliest=pd.Timestamp(opts.earliest_date),
            as_of=pd.Timestamp(opts.as_of) if opts.as_of else None,
            max_future_days=opts.max_future_days)
        # Zone-aware: PySpark turns a naive datetime into a timestamp in the Python
        # process's local zone; the window's days are UTC days, as the session's.
        parameters = {k: v.replace(tzinfo=UTC) if v is not None else None
                      for k, v in parameters.items()}
        batches = {**frames, "events": events_batch(frames["users"], frames["events"])}
        docs_dir = ctx.out_dir / DOCS if opts.data_docs else None
        try:
            results, index = run_checkpoints(ctx.workspace.root, batches, suites,
                                             opts.severity, parameters, docs_dir,
                                             opts.keep_results, SPARK)
            # GX persisted the batches: counted from the cache, then released.
            rows = {t: batches[t].count() for t in frames}
        finally:
            for batch in batches.values():
                batch.unpersist()
        source = {t: ingest.meta("sources", {}).get(t, f"{t} table") for t in frames}
        return gate(ctx, results, rows, source, index, opts.fail_on_warning)
