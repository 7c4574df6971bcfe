"""The features of features.pandas as Spark DataFrame operations (features.spark).

Same definitions as churnctl/domain/features.py, laid out for a cluster instead of a dense
users x days array: events are grouped into user-day rows, every snapshot (user, as-of day)
puts marker rows among them, and the 7/14/30-day windows, the recency and the label come from
one range window frame over day numbers (running sums per user, differenced at the markers),
in one partitioning by user; no Python UDF.
Which days are snapshots and how they split into train and test is decided on the driver by
the pandas backend's own functions, so both backends share one definition of the split.

Also a standalone script: `spark-submit feature_job.py --users U --events E --out DIR`
(`churnctl pipeline compile --target spark-submit` writes the command line).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnctl.domain import features as D
from churnctl.domain.feature_inputs import EVENTS_COLUMNS, USERS_COLUMNS, require_columns
from churnctl.domain.schema import EVENT_TYPES
from churnctl.errors import DataError

NS_PER_DAY = 86_400 * 10**9
SUMMED = tuple(dict.fromkeys([*D.WINDOW_METRICS.values(), "quiz_score_sum"]))


@dataclass
class _DaySpan:  # what domain.features.training_days reads of its Activity
    days: int


@dataclass
class FeatureResult:
    """What the run wrote, for the stage's output contract (backends/features_spark.py)."""

    snapshot_days: list[int]
    train_rows: int
    test_rows: int
    train_churn_rate: float
    latest_users: int
    last_train_snapshot: str
    first_test_snapshot: str
    has_history: bool
    last_day: str = ""  # the newest day (latest's snapshot)
    first_source_day: str | None = None  # the offline source's first day, when written


def epoch_ns(frame: Any, name: str, path: str) -> Any:
    """Nanoseconds since 1970 of a date/time column, whichever way the file stores it."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kind = frame.schema[name].dataType
    column = F.col(name)
    if isinstance(kind, T.LongType):  # nanoseconds (spark.sql.legacy.parquet.nanosAsLong)
        return column
    if isinstance(kind, T.TimestampNTZType):
        column, kind = column.cast("timestamp"), T.TimestampType()  # the session zone is UTC
    if isinstance(kind, T.TimestampType):
        return F.unix_micros(column) * 1000
    if isinstance(kind, T.DateType):
        return F.unix_date(column).cast("long") * NS_PER_DAY
    raise DataError(f"{path}: column {name} is {kind.simpleString()}, not a date or time; "
                    "write it as a Parquet timestamp or date")


def day_of(ns: Any) -> Any:
    """Floor of ns / one day, exact: (ns - ns mod day) is a whole number of days, which a
    double holds exactly at these magnitudes."""
    from pyspark.sql import functions as F

    return F.round((ns - F.pmod(ns, F.lit(NS_PER_DAY))) / F.lit(NS_PER_DAY)).cast("long")


def read_inputs(spark: Any, users_path: str, events_path: str) -> tuple[Any, Any]:
    users = spark.read.parquet(users_path)
    events = spark.read.parquet(events_path)
    require_columns(users_path, users.columns, USERS_COLUMNS)
    require_columns(events_path, events.columns, EVENTS_COLUMNS)
    return users, events


def user_rows(users: Any, path: str) -> tuple[Any, Any, bool]:
    """(first row per user with signup day, every row with its order, has a history)."""
    from pyspark.sql import functions as F

    history = D.HISTORY_COLUMN in users.columns
    rows = users.select(
        F.col("user_id").cast("long").alias("user_id"),
        epoch_ns(users, "signup_date", path).alias("signup_ns"),
        F.col("is_paid").cast("double").alias("is_paid"),
        *[F.col(c).cast("string").alias(c) for c in D.STATIC_CATEGORICAL],
        (epoch_ns(users, D.HISTORY_COLUMN, path) if history else F.lit(None).cast("long"))
        .alias("valid_ns"),
        F.monotonically_increasing_id().alias("_row"),
    )
    # Order of domain.features.users_history: by valid_from (missing first), then file order.
    rank = F.struct(F.col("valid_ns").isNotNull(), F.coalesce("valid_ns", F.lit(0)), "_row")
    rows = rows.withColumn("_rank", rank)
    attrs = ("signup_ns", *D.STATIC_NUMERIC, *D.STATIC_CATEGORICAL)
    first = (rows.groupBy("user_id").agg(F.min_by(F.struct(*attrs), "_rank").alias("a"))
             .select("user_id", *[F.col(f"a.{c}").alias(c) for c in attrs]))
    return first, rows, history


def daily_activity(events: Any, activity_events: tuple[str, ...], path: str,
                   ) -> tuple[Any, int, int]:
    """(user-day rows of every day with an event, first epoch day, number of days)."""
    from pyspark.sql import functions as F

    frame = events.select(
        F.col("user_id").cast("long").alias("user_id"),
        day_of(epoch_ns(events, "event_time", path)).alias("eday"),
        F.col("event_type").cast("string").alias("event_type"),
        F.coalesce(F.col("watch_minutes").cast("double"), F.lit(0.0)).alias("wm"),
        F.coalesce(F.col("quiz_score").cast("double"), F.lit(0.0)).alias("qs"),
    )
    bounds = frame.agg(F.min("eday"), F.max("eday")).first()
    if bounds[0] is None:
        raise DataError(f"{path}: has no rows; the features stage needs events")
    start, days = int(bounds[0]), int(bounds[1] - bounds[0]) + 1
    # float32 like the pandas cube (domain.features.Activity): the same rounding, the same sums.
    counts = [F.sum(F.when(F.col("event_type") == kind, 1).otherwise(0)).cast("float").alias(kind)
              for kind in EVENT_TYPES]
    daily = (frame.withColumn("day", F.col("eday") - F.lit(start))
             .groupBy("user_id", "day")
             .agg(F.count(F.lit(1)).cast("float").alias("events"), *counts,
                  F.sum("wm").cast("float").alias("watch_minutes"),
                  F.sum("qs").cast("float").alias("quiz_score_sum")))
    counted = sum((F.col(kind) for kind in activity_events), F.lit(0.0))
    return daily.withColumn("active", (counted > 0).cast("float")), start, days


def snapshot_rows(daily: Any, first: Any, rows: Any, history: bool, as_of: list[int],
                  labelled: set[int], start: int, config: D.FeatureConfig) -> Any:
    """domain.features.snapshots for every day in `as_of` in one pass (label only on
    `labelled` days).

    Like the pandas cube, a window sum is a difference of running sums: for a snapshot at t,
    marker rows at t, t - N (each window N) and t + horizon (label) sit among the user-day
    rows, one running-sum frame per user (O(rows), where a sliding frame re-adds its window
    for every row) gives the sums up to each marker, and the markers of one snapshot are then
    folded into its row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Snapshot (user, t) exists when the user had an active day in (t - active_within, t]:
    # candidates are the snapshot days of each user's active span (one row per user, exploded),
    # kept when the running last active day at t says so.
    within = config.active_within_days
    spans = daily.where(F.col("active") > 0).groupBy("user_id").agg(
        F.min("day").alias("_lo"), (F.max("day") + F.lit(within - 1)).alias("_hi"))
    probes = spans.select("user_id", F.explode(F.filter(
        F.array(*[F.lit(t) for t in as_of]),
        lambda t: (t >= F.col("_lo")) & (t <= F.col("_hi")))).alias("_anchor"))
    horizon = config.label_horizon_days
    label_kind = -1
    offsets = F.array(*[F.struct(F.lit(offset).alias("offset"), F.lit(kind).alias("kind"))
                        for offset, kind in [(0, 0), *((-w, w) for w in config.windows)]])
    markers = probes.select("user_id", "_anchor", F.explode(offsets).alias("m")).unionByName(
        probes.where(F.col("_anchor").isin(sorted(labelled))).select(
            "user_id", "_anchor", F.struct(F.lit(horizon).alias("offset"),
                                           F.lit(label_kind).alias("kind")).alias("m")))
    markers = markers.select("user_id", (F.col("_anchor") + F.col("m.offset")).alias("day"),
                             *[F.lit(0.0).cast("float").alias(c) for c in SUMMED],
                             "_anchor", F.col("m.kind").alias("_kind"))
    measured = daily.select("user_id", "day", *SUMMED, F.lit(None).cast("long").alias("_anchor"),
                            F.lit(None).cast("int").alias("_kind"))
    upto = (Window.partitionBy("user_id").orderBy("day")
            .rangeBetween(Window.unboundedPreceding, 0))  # days <= this row's day
    running = (measured.unionByName(markers)
               .select("user_id", "_anchor", "_kind",
                       *[F.sum(m).over(upto).alias(m) for m in SUMMED],
                       F.max(F.when(F.col("active") > 0, F.col("day"))).over(upto)
                       .alias("_last"))
               .where(F.col("_kind").isNotNull()))

    def at(kind: int, column: str) -> Any:
        return F.max(F.when(F.col("_kind") == kind, F.col(column))).alias(f"_{column}_{kind}")

    folded = running.groupBy("user_id", "_anchor").agg(
        *[at(kind, m) for kind in (0, *config.windows) for m in SUMMED],
        at(label_kind, "active"), at(0, "_last"))
    columns = []
    for window in config.windows:
        sums = {m: F.col(f"_{m}_0") - F.col(f"_{m}_{window}") for m in SUMMED}
        for name, metric in D.WINDOW_METRICS.items():
            columns.append(sums[metric].alias(f"{name}_{window}d"))
        attempts, total = sums["quiz_attempt"], sums["quiz_score_sum"]
        columns.append(F.when(attempts > 0, total / attempts).otherwise(0.0)
                       .alias(f"quiz_avg_score_{window}d"))
    frame = folded.select(F.col("_anchor").alias("day"), "user_id", *columns,
                          F.col("__last_0").alias("_last"),
                          (F.col(f"_active_{label_kind}") - F.col("_active_0")).alias("_future"))
    frame = frame.where(F.col("_last").isNotNull()
                        & (F.col("day") - F.col("_last") < F.lit(within)))
    if 30 in config.windows:
        paid = F.col("payment_success_30d") + F.col("payment_failed_30d")
        frame = frame.withColumn("payment_fail_rate_30d", F.when(
            paid > 0, F.col("payment_failed_30d") / paid).otherwise(0.0))
    frame = frame.withColumn("days_since_last_activity",
                             (F.col("day") - F.col("_last")).cast("double"))
    frame = with_static(frame, first, rows, history, start)
    label = F.when(F.col("day").isin(sorted(labelled)),
                   F.when(F.col("_future") == 0, 1).otherwise(0))
    numeric, categorical = D.feature_columns(config)
    return frame.select(
        "user_id", "day",
        F.date_from_unix_date(F.col("day") + F.lit(start)).cast("timestamp_ntz").alias("as_of"),
        *numeric, *categorical, label.cast("tinyint").alias(D.LABEL))


def with_static(frame: Any, first: Any, rows: Any, history: bool, start: int) -> Any:
    """Static attributes as of each snapshot (domain.features.static_as_of), signup filter."""
    from pyspark.sql import functions as F

    signup_day = day_of(F.col("signup_ns")) - F.lit(start)
    base = first.select("user_id", signup_day.alias("_signup"),
                        *([] if history else [*D.STATIC_NUMERIC, *D.STATIC_CATEGORICAL]))
    frame = frame.join(base, "user_id").where(F.col("_signup") <= F.col("day"))
    frame = frame.withColumn("days_since_signup", (F.col("day") - F.col("_signup")).cast("double"))
    if not history:
        return frame
    # The last row valid on day t (valid_from missing or <= t), else the user's first row.
    first_rank = rows.groupBy("user_id").agg(F.min("_rank").alias("_first"))
    attrs = (*D.STATIC_NUMERIC, *D.STATIC_CATEGORICAL)
    day_ns = (F.col("day") + F.lit(start)) * F.lit(NS_PER_DAY)
    valid = (frame.select("user_id", "day").join(rows.join(first_rank, "user_id"), "user_id")
             .where(F.col("valid_ns").isNull() | (F.col("valid_ns") <= day_ns)
                    | (F.col("_rank") == F.col("_first")))
             .groupBy("user_id", "day")
             .agg(F.max_by(F.struct(*attrs), "_rank").alias("a"))
             .select("user_id", "day", *[F.col(f"a.{c}").alias(c) for c in attrs]))
    return frame.join(valid, ["user_id", "day"])


def split_days(labelled_days: list[int], start: int, config: D.FeatureConfig,
               ) -> tuple[int, int]:
    """(last training day, first test day), by domain.features.time_split on the dates."""
    import pandas as pd

    epoch = pd.Timestamp(0)
    dates = epoch + pd.to_timedelta([day + start for day in sorted(labelled_days)], unit="D")
    try:
        train, test = D.time_split(pd.DataFrame({"as_of": dates}), config.test_fraction,
                                   config.embargo)
    except ValueError as exc:
        raise DataError(f"events table: {exc}") from None
    return ((train["as_of"].max() - epoch).days - start, (test["as_of"].min() - epoch).days - start)


def write_table(frame: Any, path: Path | str) -> None:
    frame.write.mode("error").parquet(str(path))
    tidy_parts(path)


def tidy_parts(path: Path | str) -> None:
    """Local part-directories get stable names and no checksum files (artifact hashing
    covers every file; Hadoop's .crc files only duplicate that)."""
    folder = Path(str(path))
    if "://" in str(path) or not folder.is_dir():
        return
    for crc in folder.glob(".*.crc"):
        crc.unlink()
    for index, part in enumerate(sorted(folder.glob("part-*.parquet"))):
        part.rename(folder / f"part-{index:05d}.parquet")


def run_features(spark: Any, users_path: str, events_path: str, out: str,
                 config: D.FeatureConfig, source: str | None = None) -> FeatureResult:
    """Read, compute and write user_daily, train, test and latest under `out`; with `source`
    (a table name), also every user's features on every day from the first snapshot on, the
    per-user-day table a Feast store reads as its offline source (features.feast's)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    users, events = read_inputs(spark, users_path, events_path)
    first, rows, history = user_rows(users, users_path)
    daily, start, days = daily_activity(events, config.activity_events, events_path)
    daily = daily.join(first.select("user_id"), "user_id", "left_semi") \
        .persist(StorageLevel.MEMORY_AND_DISK)
    try:
        snapshot_days = D.training_days(_DaySpan(days), config)
    except ValueError as exc:
        raise DataError(f"events table: {exc}") from None
    latest_day = days - 1
    snaps = snapshot_rows(daily, first, rows, history, [*snapshot_days, latest_day],
                          set(snapshot_days), start, config).persist(StorageLevel.MEMORY_AND_DISK)
    present = [r[0] for r in snaps.where(F.col("day") != latest_day)
               .select("day").distinct().collect()]
    last_train, first_test = split_days(present, start, config)
    is_train = (F.col("day") <= last_train) & (F.col("day") != latest_day)
    is_test = (F.col("day") >= first_test) & (F.col("day") != latest_day)
    stats = snaps.agg(F.sum(is_train.cast("long")), F.sum(is_test.cast("long")),
                      F.avg(F.when(is_train, F.col(D.LABEL))),
                      F.sum((F.col("day") == latest_day).cast("long"))).first()
    ordered = ["as_of", "user_id"]
    write_table(daily.where(F.col("active") > 0).orderBy("user_id", "day").select(
        "user_id",
        F.date_from_unix_date(F.col("day") + F.lit(start)).cast("timestamp_ntz").alias("date"),
        *D.DAILY), f"{out}/user_daily.parquet")
    write_table(snaps.where(is_train).orderBy(*ordered).drop("day"), f"{out}/train.parquet")
    write_table(snaps.where(is_test).orderBy(*ordered).drop("day"), f"{out}/test.parquet")
    write_table(snaps.where(F.col("day") == latest_day).orderBy(*ordered).drop("day", D.LABEL),
                f"{out}/latest.parquet")
    snaps.unpersist()
    first_day = None
    if source is not None:
        first_day = write_source(daily, first, rows, history, snapshot_days[0], days, start,
                                 config, f"{out}/{source}.parquet")
    daily.unpersist()

    def date(day: int) -> str:
        import datetime as dt

        return str(dt.date(1970, 1, 1) + dt.timedelta(days=day + start))

    return FeatureResult(snapshot_days, int(stats[0] or 0), int(stats[1] or 0),
                         round(float(stats[2] or 0.0), 4), int(stats[3] or 0),
                         date(last_train), date(first_test), history, date(latest_day),
                         None if first_day is None else date(first_day))


def write_source(daily: Any, first: Any, rows: Any, history: bool, from_day: int, days: int,
                 start: int, config: D.FeatureConfig, path: str) -> int | None:
    """The offline source: snapshot rows (no label) for every day in [from_day, days), keyed
    by Feast's timestamp (midnight UTC of the day); the first day that has rows."""
    from pyspark.sql import functions as F

    from churnctl.feast_store.repo import TIMESTAMP

    numeric, categorical = D.feature_columns(config)
    every = snapshot_rows(daily, first, rows, history, list(range(from_day, days)), set(),
                          start, config)
    write_table(every.orderBy("user_id", "day").select(
        "user_id", F.col("as_of").cast("timestamp").alias(TIMESTAMP), *numeric, *categorical),
        path)
    # Its first day from the file written (one column), not by computing every row again.
    low = daily.sparkSession.read.parquet(path).agg(
        F.min(F.unix_date(F.to_date(TIMESTAMP)))).first()[0]
    return None if low is None else int(low) - start


def main(argv: list[str] | None = None) -> int:
    """spark-submit entry: the features of one profile's options on Parquet paths or URIs."""
    from dataclasses import asdict

    from churnctl.errors import ChurnctlError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", required=True, help="users Parquet file or directory")
    parser.add_argument("--events", required=True, help="events Parquet file or directory")
    parser.add_argument("--out", required=True, help="output directory (local path or URI)")
    parser.add_argument("--options", default="{}",
                        help="features options as JSON (the profile's features.options)")
    args = parser.parse_args(argv)
    try:
        from churnctl.backends.features_feast import SOURCE_TABLE
        from churnctl.backends.features_spark import SparkFeatures, SparkFeaturesOptions
        from churnctl.spark.session import job_conf, spark_session

        options = SparkFeaturesOptions.model_validate(json.loads(args.options))
        # feature_store: feast (v4): the offline source too, for the Feast store to load.
        source = SOURCE_TABLE if options.feature_store == "feast" else None
        with spark_session(job_conf()) as spark:
            result = run_features(spark, args.users, args.events, args.out.rstrip("/"),
                                  SparkFeatures.config(options), source=source)
    except ChurnctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # options that do not validate
        print(f"error: --options: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
