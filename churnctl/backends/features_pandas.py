"""Build daily activity, window features, labels and the time-split training set with pandas."""

from __future__ import annotations

from pydantic import Field, field_validator

from churnctl.errors import DataError
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions

# What this stage's output holds: the training set, the test set, every user's latest
# snapshot (what serving and batch scoring read) and the daily activity table.
FEATURE_TABLES = ("user_daily", "train", "test", "latest")


class PandasFeaturesOptions(StrictOptions):
    windows: list[int] = Field(default_factory=lambda: [7, 14, 30])
    label_horizon_days: int = Field(30, ge=1)
    snapshot_every_days: int = Field(3, ge=1)
    active_within_days: int = Field(30, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)

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

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain import features as F

        opts: PandasFeaturesOptions = ctx.options
        config = F.FeatureConfig(
            tuple(opts.windows),
            opts.label_horizon_days,
            opts.snapshot_every_days,
            opts.active_within_days,
            opts.test_fraction,
        )
        users = pd.read_parquet(ctx.inputs["ingest"].table("users"))
        events = pd.read_parquet(ctx.inputs["ingest"].table("events"))
        activity = F.daily_activity(users, events)
        try:
            days = F.training_days(activity, config)
        except ValueError as exc:
            raise DataError(f"events table: {exc}") from None
        labelled = F.snapshots(activity, users, days, config, with_labels=True)
        train, test = F.time_split(labelled, config.test_fraction)
        latest = F.snapshots(activity, users, [activity.days - 1], config, with_labels=False)
        F.user_daily_table(activity).to_parquet(ctx.out_dir / "user_daily.parquet", index=False)
        train.to_parquet(ctx.out_dir / "train.parquet", index=False)
        test.to_parquet(ctx.out_dir / "test.parquet", index=False)
        latest.to_parquet(ctx.out_dir / "latest.parquet", index=False)
        numeric, categorical = F.feature_columns(config)
        schema = {"id": "user_id", "time": "as_of", "target": F.LABEL, "numeric": numeric,
                  "categorical": categorical}
        return StageOutput(
            tables={name: f"{name}.parquet" for name in FEATURE_TABLES},
            meta={"feature_schema": schema},
            metrics={
                "train_rows": len(train),
                "test_rows": len(test),
                "train_churn_rate": round(float(train[F.LABEL].mean()), 4),
            },
            summary={"snapshot_dates": len(days), "latest_users": len(latest)},
        )
