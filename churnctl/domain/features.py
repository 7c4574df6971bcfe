"""Daily user activity, rolling-window features, churn labels and a time-based split.

Everything runs on a dense users x days array with cumulative sums, so a window sum is one
subtraction; no per-user Python loop.

What the model may see, by construction (tests/test_features_time.py breaks each):
- a snapshot at day t uses events of days <= t only, and static attributes as of day t when the
  users table has a history (`valid_from`);
- its label looks at days t+1 .. t+horizon only, and counts user-initiated activity
  (`activity_events`), never a payment retry or an automatic renewal;
- no training label window reaches the test period: the split leaves `embargo_days` (at least
  the label horizon) between the last training snapshot and the first test snapshot.
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
# Billing is the system acting, not the user: a renewal or a retry after the user has gone keeps
# no one "alive". Support tickets are the user's own doing and count.
DEFAULT_ACTIVITY_EVENTS = tuple(t for t in EVENT_TYPES if not t.startswith("payment_"))
HISTORY_COLUMN = "valid_from"  # users rows with this column are a history of attribute values


@dataclass(frozen=True)
class FeatureConfig:
    windows: tuple[int, ...] = (7, 14, 30)
    label_horizon_days: int = 30
    snapshot_every_days: int = 3
    active_within_days: int = 30
    test_fraction: float = 0.2
    activity_events: tuple[str, ...] = DEFAULT_ACTIVITY_EVENTS
    embargo_days: int | None = None  # None = the label horizon

    def __post_init__(self) -> None:
        unknown = sorted(set(self.activity_events) - set(EVENT_TYPES))
        if not self.activity_events or unknown:
            raise ValueError(f"activity_events: unknown event type(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(EVENT_TYPES)}" if unknown else
                             "activity_events: name at least one event type")
        if self.embargo_days is not None and self.embargo_days < self.label_horizon_days:
            raise ValueError(f"embargo_days {self.embargo_days} is shorter than the label horizon "
                             f"({self.label_horizon_days} days): training labels would look "
                             "into the test period")

    @property
    def embargo(self) -> int:
        return self.label_horizon_days if self.embargo_days is None else self.embargo_days


@dataclass
class Activity:
    user_ids: np.ndarray
    start: pd.Timestamp
    cube: np.ndarray  # float32 [users, days, len(DAILY)]

    @property
    def days(self) -> int:
        return self.cube.shape[1]


def daily_activity(users: pd.DataFrame, events: pd.DataFrame,
                   activity_events: tuple[str, ...] = DEFAULT_ACTIVITY_EVENTS) -> Activity:
    """The users x days x DAILY array; `active` marks days with an `activity_events` event."""
    user_ids = np.unique(users["user_id"].to_numpy())
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
    counted = [DAILY.index(kind) for kind in activity_events]
    cube[:, :, DAILY.index("active")] = cube[:, :, counted].sum(axis=2) > 0
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
    history = users_history(users)
    first = history.drop_duplicates("user_id", keep="first").reset_index(drop=True)
    signup_day = ((first["signup_date"] - activity.start).dt.days).to_numpy()
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
        static = static_as_of(history, first, activity.start + pd.Timedelta(days=t))
        for name in (*STATIC_NUMERIC, *STATIC_CATEGORICAL):
            part[name] = static[name].to_numpy()[rows]
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


def users_history(users: pd.DataFrame) -> pd.DataFrame:
    """Users rows sorted by id (and by `valid_from` when the table is a history)."""
    keys = ["user_id", HISTORY_COLUMN] if HISTORY_COLUMN in users.columns else ["user_id"]
    return users.sort_values(keys, kind="stable", na_position="first").reset_index(drop=True)


def static_as_of(history: pd.DataFrame, first: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """One row per user (in `first`'s order) with the attribute values valid on `day`.

    Without a history every snapshot gets the table's values: they may be newer than the
    snapshot (docs/features.md). Before a user's first recorded change, the first row applies.
    """
    if HISTORY_COLUMN not in history.columns or len(history) == len(first):
        return first
    since = history[HISTORY_COLUMN]
    valid = history[since.isna() | (since <= day)]
    current = pd.concat([first, valid]).drop_duplicates("user_id", keep="last")
    return current.set_index("user_id").loc[first["user_id"]].reset_index()


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


def time_split(frame: pd.DataFrame, test_fraction: float, embargo_days: int,
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last `test_fraction` of as-of dates are the test set; training snapshots end
    `embargo_days` before the first test snapshot, so no training label is computed from the
    test period. Never a random split."""
    dates = np.sort(frame["as_of"].unique())
    n_test = max(1, round(len(dates) * test_fraction))
    cutoff = pd.Timestamp(dates[-n_test])
    last_train = cutoff - pd.Timedelta(days=embargo_days)
    train = frame[frame["as_of"] <= last_train].reset_index(drop=True)
    if train.empty:
        raise ValueError(
            f"{len(dates)} snapshot dates leave no training snapshot before the test period "
            f"(from {cutoff.date()}) minus the {embargo_days}-day embargo; use more days of "
            "events or a smaller test_fraction")
    return train, frame[frame["as_of"] >= cutoff].reset_index(drop=True)
