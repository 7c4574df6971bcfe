"""Per-user online features for the real-time scorer: the users' daily aggregates of the last
days, kept in memory as arrays (online_windows.py) and in SQLite (the embedded store) with the
consumer offsets they include.

State and offsets are written in one SQLite transaction per batch, so a restarted scorer
resumes from the state that matches the offsets it resumes from: every event is applied once,
and a replayed event gets the very same features (and score) again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from churnctl.domain.features import (
    STATIC_CATEGORICAL,
    STATIC_NUMERIC,
    FeatureConfig,
)
from churnctl.domain.schema import EVENT_TYPES
from churnctl.errors import UserError
from churnctl.streaming.online_windows import EventColumns, WindowState

_EPOCH = date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
# Defaults for a user the scorer has no users row for (--unknown-users default).
UNKNOWN_USER = {"plan": "free", "is_paid": 0, "country": "US", "marketing_source": "organic"}
_STATIC = (*STATIC_NUMERIC, *STATIC_CATEGORICAL)


def day_number(value: date | datetime) -> int:
    day = value.date() if isinstance(value, datetime) else value
    return day.toordinal() - _EPOCH_ORDINAL


@dataclass
class Features:
    """The features of a batch's events (one row each, in order) and each event's day."""

    columns: dict[str, Any]  # feature name -> numpy array (numbers) or list (categories)
    days: np.ndarray
    known: np.ndarray  # bool: the user has a users row (else scored from UNKNOWN_USER)

    def frame(self, model: Any) -> Any:
        """The model's input frame (ChurnModel.to_frame's columns and dtypes), built from the
        arrays at once rather than converted column by column."""
        import pandas as pd

        columns = {spec.name: (np.asarray(self.columns[spec.name], dtype=np.float64)
                               if spec.kind == "numeric"
                               else np.array(self.columns[spec.name], dtype=object))
                   for spec in model.features}
        return pd.DataFrame(columns, columns=model.feature_names)


class OnlineStore:
    """The embedded store: SQLite file with user windows, users rows and source offsets."""

    def __init__(self, path: Path, config: FeatureConfig | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.config = config or FeatureConfig()
        self.keep_days = max(self.config.windows)
        # One scorer uses it at a time, maybe from a thread other than the one that opened it.
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # A commit is in the WAL file when it returns, so a killed scorer loses none; only a
        # power cut may roll back the last commits, state and offsets together: the batches
        # are scored again from there, identically (the idempotent output covers it).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS user_window (user_id INTEGER PRIMARY KEY,"
            " last_active INTEGER, stamps BLOB, days BLOB);"
            "CREATE TABLE IF NOT EXISTS seen (user_id INTEGER, event_id INTEGER,"
            " PRIMARY KEY (user_id, event_id)) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, signup_day INTEGER,"
            " static TEXT);"
            "CREATE TABLE IF NOT EXISTS offsets (topic TEXT, partition INTEGER, next INTEGER,"
            " PRIMARY KEY (topic, partition));")
        legacy = self.db.execute("SELECT name FROM sqlite_master WHERE name = 'user_state'"
                                 ).fetchone()
        if legacy:  # the per-event JSON state of an earlier build: its windows cannot be read
            raise UserError(f"{path} holds online state in an older format; remove it (the "
                            "scorer then starts over from the group's committed offsets) or "
                            "score with a new --group")
        self.windows = WindowState(self.config)
        self.seen_limit = 4 * self.keep_days * len(EVENT_TYPES)
        self.forget()

    # -- users (signup day, static columns) -------------------------------------------------
    def load_users(self, users: Any) -> int:
        """Replace the users rows (signup day, static columns) from a users table."""
        rows = [(int(u["user_id"]), day_number(_as_date(u["signup_date"])),
                 json.dumps({k: _plain(u[k]) for k in _STATIC}))
                for u in users.to_dict("records")]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO users VALUES (?, ?, ?)", rows)
        self.forget()
        return len(rows)

    def known(self, user_ids: list[int]) -> np.ndarray:
        """Whether each user has a users row (read from SQLite once per user)."""
        self._rows(user_ids)
        return np.fromiter((self.signup[self.row[u]] is not None for u in user_ids), bool,
                           len(user_ids))

    # -- state rows --------------------------------------------------------------------------
    def _rows(self, user_ids: list[int]) -> np.ndarray:
        """The state row of each user, loading users met for the first time from SQLite."""
        row = self.row
        new = list(dict.fromkeys(u for u in user_ids if u not in row))
        if new:
            first = len(row)
            self.windows.grow(first + len(new))
            self.windows.clear(np.arange(first, first + len(new)))
            for offset, user in enumerate(new):
                row[user] = first + offset
                self.seen[user] = set()
            self.signup.extend([None] * len(new))
            self.static.extend([UNKNOWN_USER] * len(new))
            for chunk in range(0, len(new), 500):
                self._load(new[chunk:chunk + 500])
        return np.fromiter((row[u] for u in user_ids), np.int64, len(user_ids))

    def _load(self, users: list[int]) -> None:
        # The ids travel as one JSON parameter (json_each), so no SQL text is built from data.
        ids = (json.dumps(users),)
        for user, signup, static in self.db.execute(
                "SELECT user_id, signup_day, static FROM users "
                "WHERE user_id IN (SELECT value FROM json_each(?))", ids):
            self.signup[self.row[user]] = signup
            self.static[self.row[user]] = json.loads(static)
        for user, last, stamps, days in self.db.execute(
                "SELECT user_id, last_active, stamps, days FROM user_window "
                "WHERE user_id IN (SELECT value FROM json_each(?))", ids):
            self.windows.load(self.row[user], last, stamps, days)
        for user, event_id in self.db.execute(
                "SELECT user_id, event_id FROM seen "
                "WHERE user_id IN (SELECT value FROM json_each(?))", ids):
            self.seen[user].add(event_id)

    def update(self, events: list[dict[str, Any]]) -> Features:
        """Apply the events (in order) and return the features each is scored with: the
        user's windows including it, as features.snapshots computes them for its day."""
        users = [e["user_id"] for e in events]
        rows = self._rows(users)
        days = np.fromiter((day_number(e["event_time"]) for e in events), np.int64, len(events))
        fresh = np.fromiter((self._fresh(e["user_id"], e["event_id"]) for e in events), bool,
                            len(events))
        columns = EventColumns.build(rows, days, [e["event_type"] for e in events],
                                     [e["watch_minutes"] for e in events],
                                     [e["quiz_score"] for e in events], fresh, self.config)
        sums, last = self.windows.apply(columns)
        self.dirty.update(users)
        signups = [self.signup[r] for r in rows.tolist()]
        known = np.array([s is not None for s in signups], dtype=bool)
        # A user without a users row signed up, as far as the scorer knows, on the event's day.
        signup = np.where(known, [s if s is not None else 0 for s in signups], days)
        out: dict[str, Any] = self.windows.features(sums, last, days, signup)
        statics = [self.static[r] for r in rows.tolist()]
        for name in _STATIC:
            values = [s[name] for s in statics]
            out[name] = np.array(values, dtype=np.float64) if name in STATIC_NUMERIC else values
        return Features(out, days, known)

    def _fresh(self, user: int, event_id: int) -> bool:
        seen = self.seen[user]
        if event_id in seen:
            return False
        seen.add(event_id)
        self.new_seen.append((user, event_id))
        return True

    def offsets(self, topic: str) -> dict[int, int]:
        return dict(self.db.execute("SELECT partition, next FROM offsets WHERE topic = ?",
                                    (topic,)).fetchall())

    def commit(self, topic: str, next_offsets: dict[int, int]) -> None:
        """Write the changed user windows and the offsets they include, in one transaction."""
        dump = self.windows.dump
        windows = [(u, *dump(self.row[u])) for u in self.dirty]
        dropped = self._bound_seen()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO user_window VALUES (?, ?, ?, ?)",
                                windows)
            self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", self.new_seen)
            self.db.executemany("DELETE FROM seen WHERE user_id = ? AND event_id < ?", dropped)
            self.db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                                [(topic, p, o) for p, o in next_offsets.items()])
        self.dirty.clear()
        self.new_seen.clear()

    def _bound_seen(self) -> list[tuple[int, int]]:
        """Keep each user's newest half of the event ids once they pass the bound (a re-sent
        event is one sent again lately, not months later)."""
        dropped = []
        for user in self.dirty:
            seen = self.seen[user]
            if len(seen) > self.seen_limit:
                kept = sorted(seen)[len(seen) // 2:]
                self.seen[user] = set(kept)
                dropped.append((user, kept[0]))
        return dropped

    def forget(self) -> None:
        """Drop the in-memory state (after a rebalance another scorer may have moved on)."""
        self.row: dict[int, int] = {}
        self.signup: list[int | None] = []
        self.static: list[dict[str, Any]] = []
        self.seen: dict[int, set[int]] = {}
        self.new_seen: list[tuple[int, int]] = []
        self.dirty: set[int] = set()

    def close(self) -> None:
        self.db.close()


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
