"""The batches of validate.gx-spark: the ingest artifact's Parquet as Spark DataFrames, with
the columns the gate adds (gate.events_batch) computed by Spark instead of pandas.

Timestamps: pandas writes nanosecond timestamps, which Spark reads only as epoch nanoseconds
(the session's `spark.sql.legacy.parquet.nanosAsLong`); the Parquet schema says which long
columns those are, and they become TimestampType here, as do TIMESTAMP_NTZ columns (Parquet
timestamps without a zone, read in the session's UTC). So a date column is TimestampType in
every batch, and the suite's type lists name it once. Imports pyspark: call from `run` only.
"""

from __future__ import annotations

from typing import Any

from churnctl.quality_gx.contract import SIGNUP_COLUMN, UNKNOWN_USER_COLUMN

ROW = "_churnctl_row"  # file order of the users table, dropped before validation


def nanosecond_columns(path: str) -> list[str]:
    """Columns stored as nanosecond timestamps in the Parquet file or part-directory."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = ds.dataset(path, format="parquet").schema
    return [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]


def read_table(spark: Any, path: str) -> Any:
    """The table with its timestamps as TimestampType (see the module's docstring)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType

    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    frame = spark.read.parquet(path)
    nanos = set(nanosecond_columns(path))
    columns = []
    for field in frame.schema.fields:
        column = F.col(f"`{field.name}`")
        if field.name in nanos:  # floor to microseconds, exact for instants before 1970 too
            column = F.timestamp_micros(
                F.expr(f"(`{field.name}` - pmod(`{field.name}`, 1000)) div 1000"))
        elif isinstance(field.dataType, TimestampNTZType):
            column = column.cast("timestamp")
        columns.append(column.alias(field.name))
    return frame.select(*columns)


def _is_timestamp(frame: Any, name: str) -> bool:
    from pyspark.sql.types import TimestampType

    return name in frame.columns and isinstance(frame.schema[name].dataType, TimestampType)


def events_batch(users: Any, events: Any) -> Any:
    """gate.events_batch in Spark: UNKNOWN_USER_COLUMN holds user_id where the user is not in
    users (null otherwise), SIGNUP_COLUMN the signup date of the user's first row rounded up
    to its day (null where either date column is not a timestamp: their type expectations
    fail instead). One left join on the distinct user ids keeps the events' rows 1:1."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    known = users.select(F.col("user_id").alias("_known_id"))
    dated = _is_timestamp(users, "signup_date") and _is_timestamp(events, "event_time")
    if dated:
        # The user's first row in file order, as pandas' drop_duplicates keeps it.
        first = Window.partitionBy("_known_id").orderBy(ROW)
        ordered = users.withColumn(ROW, F.monotonically_increasing_id())
        day = F.date_trunc("day", F.col("signup_date"))
        ceil = F.when(day == F.col("signup_date"), day).otherwise(day + F.expr("INTERVAL 1 DAY"))
        known = (ordered.select(F.col("user_id").alias("_known_id"), ROW,
                                ceil.alias("_signup"))
                 .withColumn("_first", F.row_number().over(first))
                 .where("_first = 1").drop("_first", ROW))
    else:
        known = known.dropDuplicates().withColumn("_signup", F.lit(None).cast(TimestampType()))
    joined = events.join(F.broadcast(known), events["user_id"] == known["_known_id"], "left")
    unknown = F.when(F.col("_known_id").isNull(), F.col("user_id"))
    return joined.select(*[F.col(f"`{c}`") for c in events.columns],
                         unknown.alias(UNKNOWN_USER_COLUMN),
                         F.col("_signup").alias(SIGNUP_COLUMN))


def event_days(events: Any) -> Any:
    """The distinct days of event_time as a one-column pandas frame: all `reference_date`
    needs to find the validation's "today" (a few hundred rows, not the events)."""
    import pandas as pd
    from pyspark.sql import functions as F

    if not _is_timestamp(events, "event_time"):  # as pandas would parse the values
        values = [r[0] for r in events.select("event_time").distinct().collect()]
        return pd.DataFrame({"event_time": pd.Series(values, dtype=object)})
    # Epoch microseconds, not Python datetimes: collect() would convert those in the Python
    # process's local zone.
    micros = F.unix_micros(F.date_trunc("day", F.col("event_time")))
    rows = events.select(micros.alias("day")).where("day IS NOT NULL").distinct().collect()
    return pd.DataFrame({"event_time": pd.to_datetime([r[0] for r in rows], unit="us")})
