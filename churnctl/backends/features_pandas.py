"""Build daily activity, window features, labels and the time-split training set with pandas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from churnctl.errors import DataError
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions

# What this stage's output holds: the training set, the test set, every user's latest
# snapshot (what serving and batch scoring read) and the daily activity table.
FEATURE_TABLES = ("user_daily", "train", "test", "latest")
EventType = Literal["login", "course_enroll", "video_watch", "quiz_attempt", "payment_success",
                    "payment_failed", "support_ticket"]  # churnctl.domain.schema.EVENT_TYPES


class PandasFeaturesOptions(StrictOptions):
    windows: list[int] = Field(default_factory=lambda: [7, 14, 30])
    label_horizon_days: int = Field(30, ge=1)
    snapshot_every_days: int = Field(3, ge=1)
    active_within_days: int = Field(30, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    activity_events: list[EventType] = Field(
        default_factory=lambda: ["login", "course_enroll", "video_watch", "quiz_attempt",
                                 "support_ticket"], min_length=1,
        description="event types that make a day active (labels, population, recency); "
        "payments are the system acting and are left out by default")
    embargo_days: int | None = Field(
        None, ge=1, description="days between the last training snapshot and the first test "
        "snapshot (default and minimum: label_horizon_days)")

    @model_validator(mode="after")
    def _embargo_covers_horizon(self) -> PandasFeaturesOptions:
        if self.embargo_days is not None and self.embargo_days < self.label_horizon_days:
            raise ValueError(f"embargo_days ({self.embargo_days}) must be at least "
                             f"label_horizon_days ({self.label_horizon_days}), or training "
                             "labels see the test period")
        return self

    @field_validator("windows")
    @classmethod
    def _positive_sorted(cls, value: list[int]) -> list[int]:
        if not value or any(w <= 0 for w in value):
            raise ValueError("windows must be a non-empty list of positive day counts")
        return sorted(set(value))


class PandasFeatures(Backend):
    name = "pandas"
    stage = "features"
    description = "user_daily, 7/14/30-day windows, churn labels, time-based train/test split"
    Options = PandasFeaturesOptions
    extra = "pandas"
    modules = ("pandas", "numpy", "pyarrow")

    @staticmethod
    def config(opts: PandasFeaturesOptions) -> Any:
        from churnctl.domain import features as F

        return F.FeatureConfig(tuple(opts.windows), opts.label_horizon_days,
                               opts.snapshot_every_days, opts.active_within_days,
                               opts.test_fraction, tuple(opts.activity_events), opts.embargo_days)

    @staticmethod
    def labelled(users: Any, events: Any, config: Any) -> tuple[Any, list[int], Any]:
        """(daily activity, snapshot days, labelled snapshots): shared with features.feast."""
        from churnctl.domain import features as F

        activity = F.daily_activity(users, events, config.activity_events)
        try:
            days = F.training_days(activity, config)
            return activity, days, F.snapshots(activity, users, days, config, with_labels=True)
        except ValueError as exc:
            raise DataError(f"events table: {exc}") from None

    @staticmethod
    def split(labelled: Any, config: Any) -> tuple[Any, Any]:
        from churnctl.domain import features as F

        try:
            return F.time_split(labelled, config.test_fraction, config.embargo)
        except ValueError as exc:
            raise DataError(f"events table: {exc}") from None

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain import features as F
        from churnctl.domain.feature_inputs import check_parquet_inputs

        config = self.config(ctx.options)
        users_path, events_path = (ctx.inputs["ingest"].table(t) for t in ("users", "events"))
        check_parquet_inputs(users_path, events_path)
        users = pd.read_parquet(users_path)
        events = pd.read_parquet(events_path)
        activity, days, labelled = self.labelled(users, events, config)
        train, test = self.split(labelled, config)
        latest = F.snapshots(activity, users, [activity.days - 1], config, with_labels=False)
        F.user_daily_table(activity).to_parquet(ctx.out_dir / "user_daily.parquet", index=False)
        train.to_parquet(ctx.out_dir / "train.parquet", index=False)
        test.to_parquet(ctx.out_dir / "test.parquet", index=False)
        latest.to_parquet(ctx.out_dir / "latest.parquet", index=False)
        numeric, categorical = F.feature_columns(config)
        output = self.describe(users, config, days, train, test, latest, numeric, categorical)
        output.tables = {name: f"{name}.parquet" for name in FEATURE_TABLES}
        return output

    @staticmethod
    def describe(users: Any, config: Any, days: list[int], train: Any, test: Any, latest: Any,
                 numeric: list[str], categorical: list[str]) -> StageOutput:
        """The output contract (meta feature_schema and split, metrics, summary)."""
        from churnctl.domain import features as F

        split = {"kind": "time", "embargo_days": config.embargo,
                 "label_horizon_days": config.label_horizon_days,
                 "last_train_snapshot": str(train["as_of"].max().date()),
                 "first_test_snapshot": str(test["as_of"].min().date()),
                 "static_attributes": "as of each snapshot" if F.HISTORY_COLUMN in users.columns
                 else "current values (the users table has no valid_from history)"}
        schema = {"id": "user_id", "time": "as_of", "target": F.LABEL, "numeric": numeric,
                  "categorical": categorical, "label_horizon_days": config.label_horizon_days,
                  "embargo_days": config.embargo, "split": "time, embargoed"}
        return StageOutput(
            meta={"feature_schema": schema, "split": split},
            metrics={
                "train_rows": len(train),
                "test_rows": len(test),
                "train_churn_rate": round(float(train[F.LABEL].mean()), 4),
            },
            summary={"snapshot_dates": len(days), "latest_users": len(latest),
                     "embargo_days": config.embargo},
        )
