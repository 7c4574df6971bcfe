"""Daily user activity, rolling-window features, churn labels and a time-based split.

Everything runs on a dense users x days array with cumulative sums, so a window sum is one
subtraction; no per-user Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnctl.domain.schema import EVENT_TYPES

STATIC_CATEGORICAL = ("plan", "country", "marketing_source")
STATIC_NUMERIC = ("is_paid",)
# Daily metrics, in the order of the third axis of the activity array.
DAILY = ("events", *EVENT_TYPES, "watch_minutes", "quiz_score_sum", "active")
WINDOW_METRICS = {
    "active_days": "active",
    "events": "events",
    "logins": "login",
    "watch_minutes": "watch_minutes",
    "quiz_attempts": "quiz_attempt",
    "payment_success": "payment_success",
    "payment_failed": "payment_failed",
    "support_ticket": "support_ticket",
}
LABEL = "churn_label"


@dataclass(frozen=True)
class FeatureConfig:
    windows: tuple[int, ...] = (7, 14, 30)
    label_horizon_days: int = 30
    snapshot_every_days: int = 3
    active_within_days: int = 30
    test_fraction: float = 0.2


@dataclass
class Activity:
    user_ids: np.ndarray
    start: pd.Timestamp
    cube: np.ndarray  # float32 [users, days, len(DAILY)]

    @property
    def days(self) -> int:
        return self.cube.shape[1]


def daily_activity(users: pd.DataFrame, events: pd.DataFrame) -> Activity:
    users = users.sort_values("user_id")
    user_ids = users["user_id"].to_numpy()
    start = events["event_time"].min().normalize()
    day = ((events["event_time"] - start).dt.days).to_numpy()
    days = int(day.max()) + 1
    row = np.searchsorted(user_ids, events["user_id"].to_numpy())
    flat = row.astype(np.int64) * days + day
    size = len(user_ids) * days
    cube = np.zeros((len(user_ids), days, len(DAILY)), dtype=np.float32)
    kinds = events["event_type"].to_numpy()

    def put(
        position: int, weights: np.ndarray | None = None, mask: np.ndarray | None = None
    ) -> None:
        idx = flat if mask is None else flat[mask]
        w = weights if mask is None or weights is None else weights[mask]
        cube[:, :, position] = np.bincount(idx, w, minlength=size).reshape(-1, days)

    put(0)
    for offset, kind in enumerate(EVENT_TYPES, start=1):
        put(offset, mask=kinds == kind)
    put(DAILY.index("watch_minutes"), events["watch_minutes"].fillna(0).to_numpy(np.float64))
    put(DAILY.index("quiz_score_sum"), events["quiz_score"].fillna(0).to_numpy(np.float64))
    cube[:, :, DAILY.index("active")] = cube[:, :, 0] > 0
    return Activity(user_ids, start, cube)


def user_daily_table(activity: Activity) -> pd.DataFrame:
    """The long user_daily table (active days only, to keep it small)."""
    users, days = np.nonzero(activity.cube[:, :, DAILY.index("active")])
    values = activity.cube[users, days]
    frame = pd.DataFrame(values, columns=list(DAILY))
    frame.insert(0, "date", activity.start + pd.to_timedelta(days, unit="D"))
    frame.insert(0, "user_id", activity.user_ids[users])
    return frame


def snapshots(
    activity: Activity,
    users: pd.DataFrame,
    as_of_days: list[int],
    config: FeatureConfig,
    with_labels: bool,
) -> pd.DataFrame:
    """One row per (active user, as-of day) with window features, static columns and label."""
    cube = activity.cube
    cumulative = np.concatenate(
        [
            np.zeros((cube.shape[0], 1, cube.shape[2]), np.float64),
            np.cumsum(cube, axis=1, dtype=np.float64),
        ],
        axis=1,
    )  # cumulative[:, t + 1] = sum of days 0..t
    active = cube[:, :, DAILY.index("active")] > 0
    day_index = np.where(active, np.arange(activity.days), -1)
    last_active = np.maximum.accumulate(day_index, axis=1)
    users = users.sort_values("user_id").reset_index(drop=True)
    signup_day = ((users["signup_date"] - activity.start).dt.days).to_numpy()
    parts = []
    for t in as_of_days:
        since_last = t - last_active[:, t]
        population = (
            (last_active[:, t] >= 0) & (since_last < config.active_within_days) & (signup_day <= t)
        )
        rows = np.nonzero(population)[0]
        columns: dict[str, np.ndarray] = {}
        for window in config.windows:
            low = max(t + 1 - window, 0)
            sums = cumulative[rows, t + 1] - cumulative[rows, low]
            for name, metric in WINDOW_METRICS.items():
                columns[f"{name}_{window}d"] = sums[:, DAILY.index(metric)]
            attempts = sums[:, DAILY.index("quiz_attempt")]
            quiz_sum = sums[:, DAILY.index("quiz_score_sum")]
            columns[f"quiz_avg_score_{window}d"] = np.divide(
                quiz_sum, attempts, out=np.zeros_like(quiz_sum), where=attempts > 0
            )
        paid = (
            columns["payment_success_30d"] + columns["payment_failed_30d"]
            if 30 in config.windows
            else None
        )
        if paid is not None:
            columns["payment_fail_rate_30d"] = np.divide(
                columns["payment_failed_30d"], paid, out=np.zeros_like(paid), where=paid > 0
            )
        columns["days_since_last_activity"] = since_last[rows].astype(np.float64)
        columns["days_since_signup"] = (t - signup_day[rows]).astype(np.float64)
        part = pd.DataFrame(columns)
        part.insert(0, "as_of", activity.start + pd.Timedelta(days=t))
        part.insert(0, "user_id", activity.user_ids[rows])
        for name in (*STATIC_NUMERIC, *STATIC_CATEGORICAL):
            part[name] = users[name].to_numpy()[rows]
        if with_labels:
            horizon = config.label_horizon_days
            future = (
                cumulative[rows, t + 1 + horizon, DAILY.index("active")]
                - cumulative[rows, t + 1, DAILY.index("active")]
            )
            part[LABEL] = (future == 0).astype(np.int8)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["is_paid"] = frame["is_paid"].astype(np.float64)
    return frame


def feature_columns(config: FeatureConfig) -> tuple[list[str], list[str]]:
    """(numeric, categorical) model feature names, in model order."""
    numeric = [
        f"{name}_{w}d" for w in config.windows for name in (*WINDOW_METRICS, "quiz_avg_score")
    ]
    if 30 in config.windows:
        numeric.append("payment_fail_rate_30d")
    numeric += ["days_since_last_activity", "days_since_signup", *STATIC_NUMERIC]
    return numeric, list(STATIC_CATEGORICAL)


def training_days(activity: Activity, config: FeatureConfig) -> list[int]:
    first = max(config.windows) - 1
    last = activity.days - 1 - config.label_horizon_days
    if last < first:
        raise ValueError(
            f"{activity.days} days of events are too few: need at least "
            f"{max(config.windows) + config.label_horizon_days} for the windows plus the "
            "label horizon"
        )
    return list(range(last, first - 1, -config.snapshot_every_days))[::-1]


def time_split(frame: pd.DataFrame, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last `test_fraction` of as-of dates are the test set; never a random split."""
    dates = np.sort(frame["as_of"].unique())
    n_test = max(1, round(len(dates) * test_fraction))
    cutoff = dates[-n_test]
    return frame[frame["as_of"] < cutoff].reset_index(drop=True), frame[
        frame["as_of"] >= cutoff
    ].reset_index(drop=True)
