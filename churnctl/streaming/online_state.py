"""Per-user online features for the real-time scorer: daily aggregates of the last days,
kept in memory and in SQLite (the embedded store) with the consumer offsets they include.

The features are the batch ones (domain/features.py: windows over days up to and including
the event's day, days since the last active day, days since signup, static columns), updated
event by event. State and offsets are written in one SQLite transaction per batch, so a
restarted scorer resumes from the state that matches the offsets it resumes from: every event
is applied once, and a replayed event gets the very same features (and score) again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from churnctl.domain.features import (
    DAILY,
    DEFAULT_ACTIVITY_EVENTS,
    STATIC_CATEGORICAL,
    STATIC_NUMERIC,
    WINDOW_METRICS,
    FeatureConfig,
)
from churnctl.domain.schema import EVENT_TYPES

_INDEX = {name: i for i, name in enumerate(DAILY)}
_EPOCH = date(1970, 1, 1)
# Defaults for a user the scorer has no users row for (--unknown-users default).
UNKNOWN_USER = {"plan": "free", "is_paid": 0, "country": "US", "marketing_source": "organic"}


def day_number(value: date | datetime) -> int:
    day = value.date() if isinstance(value, datetime) else value
    return (day - _EPOCH).days


@dataclass
class UserState:
    """One user's daily metrics (day -> values in DAILY order) over the longest window."""

    days: dict[int, list[float]] = field(default_factory=dict)
    last_active: int | None = None
    seen: set[int] = field(default_factory=set)  # event_ids applied: a re-sent event counts once

    def apply(self, event: dict[str, Any], keep_days: int,
              activity_events: tuple[str, ...] = DEFAULT_ACTIVITY_EVENTS) -> None:
        if event["event_id"] in self.seen:
            return
        today = day_number(event["event_time"])
        values = self.days.setdefault(today, [0.0] * len(DAILY))
        values[_INDEX["events"]] += 1
        values[_INDEX[event["event_type"]]] += 1
        values[_INDEX["watch_minutes"]] += _number(event["watch_minutes"])
        values[_INDEX["quiz_score_sum"]] += _number(event["quiz_score"])
        if event["event_type"] in activity_events:
            values[_INDEX["active"]] = 1.0
            self.last_active = today if self.last_active is None else max(self.last_active, today)
        self.seen.add(event["event_id"])
        oldest = today - keep_days
        for day in [d for d in self.days if d <= oldest]:
            del self.days[day]
        if len(self.seen) > 4 * keep_days * len(EVENT_TYPES):  # bounded: drop the oldest ids
            self.seen = set(sorted(self.seen)[len(self.seen) // 2:])

    def to_json(self) -> str:
        return json.dumps({"days": self.days, "last_active": self.last_active,
                           "seen": sorted(self.seen)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> UserState:
        raw = json.loads(text)
        return cls({int(d): v for d, v in raw["days"].items()}, raw["last_active"],
                   set(raw["seen"]))


def window_features(state: UserState, today: int, signup_day: int, static: dict[str, Any],
                    config: FeatureConfig) -> dict[str, Any]:
    """The model's features for `today`, as features.snapshots computes them."""
    row: dict[str, Any] = {}
    windows = sorted(config.windows)
    # Each kept day is added once, into the shortest window holding it; the longer windows
    # are then running totals of the shorter ones.
    buckets = [[0.0] * len(DAILY) for _ in windows]
    for day, values in state.days.items():
        age = today - day
        if age < 0 or age >= windows[-1]:
            continue
        index = next(i for i, window in enumerate(windows) if age < window)
        bucket = buckets[index]
        for position, value in enumerate(values):
            bucket[position] += value
    sums, running = [], [0.0] * len(DAILY)
    for bucket in buckets:
        running = [a + b for a, b in zip(running, bucket, strict=True)]
        sums.append(running)
    for window, total in zip(windows, sums, strict=True):
        for name, metric in WINDOW_METRICS.items():
            row[f"{name}_{window}d"] = total[_INDEX[metric]]
        attempts = total[_INDEX["quiz_attempt"]]
        row[f"quiz_avg_score_{window}d"] = (total[_INDEX["quiz_score_sum"]] / attempts
                                            if attempts > 0 else 0.0)
    if 30 in config.windows:
        paid = row["payment_success_30d"] + row["payment_failed_30d"]
        row["payment_fail_rate_30d"] = row["payment_failed_30d"] / paid if paid > 0 else 0.0
    last = state.last_active
    row["days_since_last_activity"] = float(today - last if last is not None
                                            else config.active_within_days)
    row["days_since_signup"] = float(today - signup_day)
    for name in (*STATIC_NUMERIC, *STATIC_CATEGORICAL):
        row[name] = static[name]
    row["is_paid"] = float(row["is_paid"])
    return row


class OnlineStore:
    """The embedded store: SQLite file with user states, users rows and source offsets."""

    def __init__(self, path: Path, config: FeatureConfig | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.config = config or FeatureConfig()
        self.keep_days = max(self.config.windows)
        # One scorer uses it at a time, maybe from a thread other than the one that opened it.
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS user_state (user_id INTEGER PRIMARY KEY, state TEXT);"
            "CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, signup_day INTEGER,"
            " static TEXT);"
            "CREATE TABLE IF NOT EXISTS offsets (topic TEXT, partition INTEGER, next INTEGER,"
            " PRIMARY KEY (topic, partition));")
        self.cache: dict[int, UserState] = {}
        self.dirty: set[int] = set()

    def load_users(self, users: Any) -> int:
        """Replace the users rows (signup day, static columns) from a users table."""
        rows = [(int(u["user_id"]), day_number(_as_date(u["signup_date"])),
                 json.dumps({k: _plain(u[k]) for k in (*STATIC_NUMERIC, *STATIC_CATEGORICAL)}))
                for u in users.to_dict("records")]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO users VALUES (?, ?, ?)", rows)
        return len(rows)

    def user(self, user_id: int) -> tuple[int, dict[str, Any]] | None:
        found = self.db.execute("SELECT signup_day, static FROM users WHERE user_id = ?",
                                (user_id,)).fetchone()
        return (found[0], json.loads(found[1])) if found else None

    def state(self, user_id: int) -> UserState:
        state = self.cache.get(user_id)
        if state is None:
            found = self.db.execute("SELECT state FROM user_state WHERE user_id = ?",
                                    (user_id,)).fetchone()
            state = UserState.from_json(found[0]) if found else UserState()
            self.cache[user_id] = state
        return state

    def apply(self, event: dict[str, Any]) -> UserState:
        state = self.state(event["user_id"])
        state.apply(event, self.keep_days, self.config.activity_events)
        self.dirty.add(event["user_id"])
        return state

    def offsets(self, topic: str) -> dict[int, int]:
        return dict(self.db.execute("SELECT partition, next FROM offsets WHERE topic = ?",
                                    (topic,)).fetchall())

    def commit(self, topic: str, next_offsets: dict[int, int]) -> None:
        """Write the changed user states and the offsets they include, in one transaction."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO user_state VALUES (?, ?)",
                                [(u, self.cache[u].to_json()) for u in self.dirty])
            self.db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                                [(topic, p, o) for p, o in next_offsets.items()])
        self.dirty.clear()

    def forget(self) -> None:
        """Drop the in-memory states (after a rebalance another scorer may have moved on)."""
        self.cache.clear()
        self.dirty.clear()

    def close(self) -> None:
        self.db.close()


def _number(value: Any) -> float:
    """A measure of the event, missing (None, NaN) as 0 like the batch features."""
    return 0.0 if value is None or value != value else float(value)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if hasattr(value, "date"):
        return value.date()
    return date.fromisoformat(str(value)[:10])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
