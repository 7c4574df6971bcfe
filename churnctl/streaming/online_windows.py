"""The scorer's per-user windows, columnar: every user's last days in one ring buffer, updated
and read for a whole batch of events in numpy calls.

The features are the batch ones (domain/features.py): windows over days up to and including
the event's day, days since the last active day, days since signup, static columns. Each
event is scored with the state *after* applying it, so a batch is applied in rounds: round r
applies and reads the r-th event of every user in the batch (at most one per user, so the
fancy-indexed updates never collide), in arrival order. The floating-point operations on a
user's state are then the same whatever the batch boundaries are, and a replayed event gets
bit for bit the same features (and score) again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from churnctl.domain.features import DAILY, WINDOW_METRICS, FeatureConfig
from churnctl.domain.schema import EVENT_TYPES

_INDEX = {name: i for i, name in enumerate(DAILY)}
ACTIVE = _INDEX["active"]
NONE_DAY = np.int64(-(2**40))  # "no day": the stamp of an empty slot, a user never active


@dataclass
class EventColumns:
    """A batch of decoded events as arrays, in arrival order."""

    rows: np.ndarray  # int64: the state row of each event's user
    days: np.ndarray  # int64: day number of event_time
    delta: np.ndarray  # float64 [n, len(DAILY)]: what the event adds to its day (0 if a repeat)
    active: np.ndarray  # bool: an activity event, and not a repeat

    @classmethod
    def build(cls, rows: np.ndarray, days: np.ndarray, types: list[str], watch: list[Any],
              quiz: list[Any], fresh: np.ndarray, config: FeatureConfig) -> EventColumns:
        n = len(days)
        kind = np.fromiter((_TYPE_COLUMN[t] for t in types), np.int64, n)
        delta = np.zeros((n, len(DAILY)))
        delta[:, _INDEX["events"]] = 1.0
        delta[np.arange(n), kind] += 1.0
        delta[:, _INDEX["watch_minutes"]] = _numbers(watch)
        delta[:, _INDEX["quiz_score_sum"]] = _numbers(quiz)
        activity = np.isin(kind, [_INDEX[t] for t in config.activity_events])
        delta[~fresh] = 0.0  # a re-sent event is scored, but counts once
        return cls(rows, days, delta, activity & fresh)


_TYPE_COLUMN = {name: _INDEX[name] for name in EVENT_TYPES}


def _numbers(values: list[Any]) -> np.ndarray:
    """Missing (None, NaN) as 0, like the batch features."""
    out = np.array([0.0 if v is None else v for v in values], dtype=np.float64)
    out[np.isnan(out)] = 0.0
    return out


class WindowState:
    """Ring buffers of daily metrics: slot `day % keep` of row r holds day `stamp[r, slot]`."""

    def __init__(self, config: FeatureConfig, capacity: int = 1024) -> None:
        self.config = config
        self.windows = sorted(config.windows)
        self.keep = self.windows[-1]
        self.cube = np.zeros((capacity, self.keep, len(DAILY)))
        self.stamp = np.full((capacity, self.keep), NONE_DAY, dtype=np.int64)
        self.last_active = np.full(capacity, NONE_DAY, dtype=np.int64)
        self._ages = np.arange(self.keep, dtype=np.int64)

    def grow(self, rows: int) -> None:
        if rows <= len(self.cube):
            return
        size = max(rows, 2 * len(self.cube))
        extra = size - len(self.cube)
        self.cube = np.concatenate([self.cube, np.zeros((extra, *self.cube.shape[1:]))])
        self.stamp = np.concatenate([self.stamp, np.full((extra, self.keep), NONE_DAY)])
        self.last_active = np.concatenate([self.last_active, np.full(extra, NONE_DAY)])

    def clear(self, rows: np.ndarray) -> None:
        self.cube[rows] = 0.0
        self.stamp[rows] = NONE_DAY
        self.last_active[rows] = NONE_DAY

    def apply(self, events: EventColumns) -> tuple[list[np.ndarray], np.ndarray]:
        """Apply the events in order; per window the DAILY sums each event is scored with,
        and each event's last active day (NONE_DAY: never)."""
        n = len(events.days)
        sums = [np.empty((n, len(DAILY))) for _ in self.windows]
        last = np.empty(n, dtype=np.int64)
        for chosen in _rounds(events.rows):
            rows, days = events.rows[chosen], events.days[chosen]
            delta, active = events.delta[chosen], events.active[chosen]
            slot = days % self.keep
            held = self.stamp[rows, slot]
            older = held < days  # the slot's day is `keep` or more days back: outside every window
            self.cube[rows[older], slot[older]] = 0.0
            self.stamp[rows[older], slot[older]] = days[older]
            # A slot holding a newer day: this event is more than `keep` days older than the
            # user's newest; it counts for its own score (below), in no later window.
            stored = held <= days
            r, s = rows[stored], slot[stored]
            self.cube[r, s, :ACTIVE] += delta[stored, :ACTIVE]
            self.cube[r, s, ACTIVE] = np.maximum(self.cube[r, s, ACTIVE], active[stored])
            became = rows[active]
            self.last_active[became] = np.maximum(self.last_active[became], days[active])
            late = ~stored
            for i, total in enumerate(self._window_sums(rows, days)):
                if late.any():
                    total[late, :ACTIVE] += delta[late, :ACTIVE]
                    total[late, ACTIVE] += active[late]
                sums[i][chosen] = total
            last[chosen] = self.last_active[rows]
        return sums, last

    def _window_sums(self, rows: np.ndarray, days: np.ndarray) -> list[np.ndarray]:
        """Per window, each row's sum over its days in (day - window, day].

        The day of age a lives in slot (day - a) % keep, so the slots are read youngest first
        by index, and a slot counts when it holds exactly that day. The ages are then added
        by a running sum (`np.add.accumulate` adds strictly in order, unlike `sum`, whose
        pairwise and unrolled loops may group the additions differently for other shapes):
        a row's sums do not depend on which rows share the call, so replaying an event
        reproduces its features exactly."""
        wanted = days[:, None] - self._ages  # [m, keep]: the day of each age
        slots = wanted % self.keep
        rows2 = rows[:, None]
        cube = self.cube[rows2, slots]  # [m, keep, DAILY], youngest first
        cube[self.stamp[rows2, slots] != wanted] = 0.0
        running = np.add.accumulate(cube, axis=1)
        return [running[:, window - 1] for window in self.windows]

    def features(self, sums: list[np.ndarray], last: np.ndarray, days: np.ndarray,
                 signup: np.ndarray) -> dict[str, np.ndarray]:
        """The model's numeric window and recency features, as features.snapshots has them."""
        columns: dict[str, np.ndarray] = {}
        for window, total in zip(self.windows, sums, strict=True):
            for name, metric in WINDOW_METRICS.items():
                columns[f"{name}_{window}d"] = total[:, _INDEX[metric]]
            attempts = total[:, _INDEX["quiz_attempt"]]
            columns[f"quiz_avg_score_{window}d"] = np.divide(
                total[:, _INDEX["quiz_score_sum"]], attempts, out=np.zeros(len(attempts)),
                where=attempts > 0)
        if 30 in self.config.windows:
            failed = columns["payment_failed_30d"]
            paid = columns["payment_success_30d"] + failed
            columns["payment_fail_rate_30d"] = np.divide(failed, paid, out=np.zeros(len(paid)),
                                                         where=paid > 0)
        columns["days_since_last_activity"] = np.where(
            last == NONE_DAY, float(self.config.active_within_days), days - last
        ).astype(np.float64)
        columns["days_since_signup"] = (days - signup).astype(np.float64)
        return columns

    # -- persistence: one user's row as bytes ------------------------------------------------
    def dump(self, row: int) -> tuple[int, bytes, bytes]:
        return (int(self.last_active[row]), self.stamp[row].tobytes(), self.cube[row].tobytes())

    def load(self, row: int, last_active: int, stamp: bytes, cube: bytes) -> None:
        self.last_active[row] = last_active
        self.stamp[row] = np.frombuffer(stamp, dtype=np.int64)
        self.cube[row] = np.frombuffer(cube, dtype=np.float64).reshape(self.keep, len(DAILY))


def _rounds(rows: np.ndarray) -> list[np.ndarray]:
    """Event positions by round: round r holds every user's r-th event of the batch."""
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(rows)])
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows)) - np.repeat(starts, sizes)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2 if len(rank) else 1))
    return [by_rank[bounds[r]:bounds[r + 1]] for r in range(len(bounds) - 1)]
