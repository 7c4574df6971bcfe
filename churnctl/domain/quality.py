"""Data quality checks on users + events, and the leakage guard on a training set.

Each check returns a CheckResult; the validate backends decide what is a gate failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.schema import PRIMARY_KEYS, TABLES, Column
from churnctl.errors import bounded, shorten

MAX_DETAIL = 300


@dataclass
class CheckResult:
    check: str
    table: str
    column: str
    passed: bool
    failing_rows: int = 0
    detail: str = ""
    severity: str = "error"  # error fails the gate; warning is reported only

    def __post_init__(self) -> None:
        # Details quote the data: one 10 MB cell must not become a 10 MB report line.
        self.detail = bounded(self.detail, MAX_DETAIL)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _column_checks(frame: pd.DataFrame, table: str, column: Column) -> list[CheckResult]:
    series = frame[column.name]
    results = []
    if column.required:
        nulls = int(series.isna().sum())
        results.append(
            CheckResult(
                "not_null",
                table,
                column.name,
                nulls == 0,
                nulls,
                "blank values in a required column" if nulls else "",
            )
        )
    if column.allowed:
        bad = series.notna() & ~series.isin(column.allowed)
        examples = sorted(shorten(v, 40) for v in series[bad].unique()[:3])
        results.append(
            CheckResult(
                "allowed_values",
                table,
                column.name,
                not bad.any(),
                int(bad.sum()),
                f"unexpected {', '.join(examples)}; allowed: {', '.join(column.allowed)}"
                if bad.any()
                else "",
            )
        )
    if column.minimum is not None or column.maximum is not None:
        low = -np.inf if column.minimum is None else column.minimum
        high = np.inf if column.maximum is None else column.maximum
        values = pd.to_numeric(series, errors="coerce")
        bad = values.notna() & ((values < low) | (values > high))
        results.append(
            CheckResult(
                "range",
                table,
                column.name,
                not bad.any(),
                int(bad.sum()),
                f"values outside [{low}, {high}], e.g. {values[bad].iloc[0]}" if bad.any() else "",
            )
        )
    return results


def check_tables(
    users: pd.DataFrame,
    events: pd.DataFrame,
    *,
    max_future_days: int = 1,
    earliest: pd.Timestamp | None = None,
    as_of: pd.Timestamp | None = None,
) -> list[CheckResult]:
    """All checks; dates past `as_of` (default: the last event's day, see reference_date) plus
    `max_future_days` fail.

    "Today" is an input, never the wall clock, so the result depends only on the data and the
    options (the stage's cache key).
    """
    results: list[CheckResult] = []
    frames = {"users": users, "events": events}
    for table, frame in frames.items():
        for column in TABLES[table]:
            if column.name in frame.columns:
                results.extend(_column_checks(frame, table, column))
        # An empty table passes every column check: say so (validate.gx's row_count, min 1).
        results.append(CheckResult("row_count", table, "*", len(frame) > 0, 0,
                                   "" if len(frame) else f"the {table} table has no rows"))
        key = PRIMARY_KEYS[table]
        # A users history has one row per user and valid_from date.
        keys = [key, *(["valid_from"] if "valid_from" in frame.columns else [])]
        duplicated = frame.duplicated(keys)
        dupes = int(duplicated.sum())
        results.append(
            CheckResult(
                "unique",
                table,
                "+".join(keys),
                dupes == 0,
                dupes,
                f"{dupes} duplicate id(s), e.g. {frame.loc[duplicated, key].iloc[0]}"
                if dupes
                else "",
            )
        )
    mismatch = (users["plan"] == "paid").astype(int) != users["is_paid"].astype(int)
    results.append(
        CheckResult(
            "consistent",
            "users",
            "is_paid",
            not mismatch.any(),
            int(mismatch.sum()),
            "is_paid disagrees with plan" if mismatch.any() else "",
        )
    )
    unknown = ~events["user_id"].isin(users["user_id"])
    results.append(
        CheckResult(
            "known_user",
            "events",
            "user_id",
            not unknown.any(),
            int(unknown.sum()),
            f"events of unknown users, e.g. user_id {events.loc[unknown, 'user_id'].iloc[0]}"
            if unknown.any()
            else "",
        )
    )
    earliest = earliest if earliest is not None else pd.Timestamp("2000-01-01")
    today = reference_date(events, as_of, earliest)
    # Compared by day: with max_future_days=0 an event at noon of `today` is still fine.
    latest_ok = today + pd.Timedelta(days=max_future_days) if today is not None else None
    today_from = "as_of" if as_of is not None else "the last event's day unless as_of is set"
    for table, column in (("users", "signup_date"), ("events", "event_time")):
        values = frames[table][column]
        bad = values < earliest
        if latest_ok is not None:
            bad |= values.dt.normalize() > latest_ok
        upper = latest_ok.date() if latest_ok is not None else "any"
        results.append(
            CheckResult(
                "date_range",
                table,
                column,
                not bad.any(),
                int(bad.sum()),
                f"dates outside {earliest.date()}..{upper} (today = {today_from}), "
                f"e.g. {values[bad].iloc[0]}"
                if bad.any()
                else "",
            )
        )
    signup = events["user_id"].map(
        users.drop_duplicates("user_id").set_index("user_id")["signup_date"]
    )
    early = events["event_time"].dt.normalize() < signup
    results.append(
        CheckResult(
            "after_signup",
            "events",
            "event_time",
            not early.any(),
            int(early.sum()),
            "events before the user's signup_date" if early.any() else "",
            severity="warning",
        )
    )
    return results


# An event log does not fall silent for months before its last day: an event past such a gap
# is a bad value (a mistyped year, a unit mix-up), not the data's "today".
MAX_SILENCE_DAYS = 90


def reference_date(
    events: pd.DataFrame,
    as_of: pd.Timestamp | None = None,
    earliest: pd.Timestamp | None = None,
) -> pd.Timestamp | None:
    """The validation's "today": `as_of` when given, else the day of the last event.

    The last event of the log's body, that is: days after a silence of more than
    MAX_SILENCE_DAYS do not count, so a single event in 2099 is reported instead of becoming
    "today". None when there are no (plausible) events: then no date is in the future.
    """
    if as_of is not None:
        return pd.Timestamp(as_of).normalize()
    days = pd.to_datetime(events["event_time"]).dropna().dt.normalize()
    if earliest is not None:
        days = days[days >= earliest]  # too-early dates are reported by their own bound
    distinct = np.unique(days.to_numpy())  # sorted
    if not len(distinct):
        return None
    silences = np.diff(distinct) > np.timedelta64(MAX_SILENCE_DAYS, "D")
    body_end = int(np.argmax(silences)) if silences.any() else len(distinct) - 1
    return pd.Timestamp(distinct[body_end])


def single_feature_auc(
    frame: pd.DataFrame, label: pd.Series, columns: list[str]
) -> dict[str, float]:
    """ROC AUC of each column alone, direction-free (max(auc, 1 - auc)).

    Categoricals are scored by their target rate. All columns are ranked at once (the
    Mann-Whitney form of the AUC, ties counted half, as roc_auc_score does): one
    roc_auc_score call per column took seconds on a 2,000-column table.
    """
    from scipy.stats import rankdata

    y = label.to_numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        return {}
    if len(classes) > 2:  # roc_auc_score's own error for a multi-class label
        from sklearn.metrics import roc_auc_score

        roc_auc_score(y, np.zeros(len(y)))
    positive = y == classes[-1]
    whole = bool(np.all(np.mod(y.astype("float64"), 1) == 0)) if y.dtype.kind in "biuf" \
        else False
    scores: dict[str, float] = {}
    for start in range(0, len(columns), 256):  # bounded memory on very wide tables
        names = columns[start:start + 256]
        block = np.column_stack([_score_values(frame[name], y, whole) for name in names])
        ranks = rankdata(block, axis=0)
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        auc = (ranks[positive].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        for name, value in zip(names, auc, strict=True):
            scores[name] = round(float(max(value, 1 - value)), 4)
    return scores


def _score_values(values: pd.Series, y: np.ndarray, whole: bool) -> np.ndarray:
    """A column as numbers to rank: itself, or its categories' target rates (-1e12 blank)."""
    if not pd.api.types.is_numeric_dtype(values):
        if whole:  # integer labels: sum / count is exactly groupby's mean
            codes, _ = pd.factorize(values)
            seen = codes >= 0
            sums = np.bincount(codes[seen], y[seen].astype("float64"))
            counts = np.bincount(codes[seen])
            rates = np.full(len(values), np.nan)
            rates[seen] = (sums / counts)[codes[seen]]
            return np.nan_to_num(rates, nan=-1e12)
        values = values.map(pd.Series(y, index=values.index).groupby(values).mean())
    return pd.to_numeric(values, errors="coerce").fillna(-1e12).to_numpy(dtype="float64")
