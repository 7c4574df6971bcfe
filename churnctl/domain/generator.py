"""Vectorized, deterministic synthetic users + events for the churn data model (DESIGN.md §2).

Each user carries hidden latent state (engagement, churn propensity, churn day, decay shape)
that shapes their events but is never output: the original system leaked its latent
`engagement_score` into training. Churners fade out before they stop, but so do some loyal
users (temporary dips, slow trends) and some churners stop abruptly, so the signal is learnable
but far from perfect. All work is numpy over arrays; Python loops only run over event types,
months and payment retries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from churnctl.domain.schema import COUNTRIES, EVENT_TYPES, MARKETING_SOURCES, PLANS

LOGIN, ENROLL, VIDEO, QUIZ, PAY_OK, PAY_FAIL, TICKET = range(len(EVENT_TYPES))
N_COURSES = 60
PRICES = np.array([9.99, 14.99, 24.99])
# Base mixes and the log-weight shift applied per unit of `drift` (covariate drift only).
COUNTRY_P = np.array([0.30, 0.24, 0.12, 0.10, 0.08, 0.16])
COUNTRY_DRIFT = np.array([1.0, -0.7, -0.5, -0.4, -0.4, 0.8])
SOURCE_P = np.array([0.34, 0.16, 0.24, 0.16, 0.10])
SOURCE_DRIFT = np.array([-0.8, -0.5, 1.0, 0.8, -0.5])
SOURCE_ENGAGEMENT = np.array([0.1, 0.35, -0.35, 0.0, 0.3])
SOURCE_CHURN = np.array([0.0, -0.3, 0.45, 0.15, -0.3])
PRE_START_SHARE = 0.4  # users who signed up before `start` (up to a year earlier)


@dataclass(frozen=True)
class GeneratorConfig:
    users: int = 2000
    days: int = 120
    start: dt.date = dt.date(2025, 1, 1)
    seed: int = 42
    paid_ratio: float = 0.35
    churn_rate: float = 0.35
    drift: float = 0.0  # 0 = none; >0 shifts country/source mix, watch time, payment failures

    def __post_init__(self) -> None:
        if self.users < 1 or not 1 <= self.days <= 40_000:
            raise ValueError("users must be >= 1 and days in 1..40000")
        if not (0 <= self.paid_ratio <= 1 and 0 <= self.churn_rate <= 1):
            raise ValueError("paid_ratio and churn_rate must be within [0, 1]")
        if self.drift < 0:
            raise ValueError("drift must be >= 0")


@dataclass(frozen=True)
class _Latent:
    """Hidden per-user state; used to generate, never returned."""

    signup: np.ndarray  # signup day relative to start (negative = before the window)
    paid: np.ndarray
    engagement: np.ndarray  # (0, 1)
    churn_day: np.ndarray  # first day without activity; >= days for non-churners
    decay_len: np.ndarray
    decay_floor: np.ndarray
    skill: np.ndarray  # mean quiz score
    price: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _mix(base: np.ndarray, shift: np.ndarray, drift: float) -> np.ndarray:
    weights = base * np.exp(drift * shift)
    return weights / weights.sum()


def _calibrate(logit: np.ndarray, rate: float) -> np.ndarray:
    """Shift `logit` so the mean probability equals `rate` (bisection, deterministic)."""
    if rate <= 0 or rate >= 1:
        return np.full(logit.shape, float(rate))
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < rate else (lo, mid)
    return _sigmoid(logit + (lo + hi) / 2)


def _make_users(cfg: GeneratorConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, _Latent]:
    n, days = cfg.users, cfg.days
    country = rng.choice(len(COUNTRIES), size=n, p=_mix(COUNTRY_P, COUNTRY_DRIFT, cfg.drift))
    source = rng.choice(len(MARKETING_SOURCES), size=n,
                        p=_mix(SOURCE_P, SOURCE_DRIFT, cfg.drift))
    paid = rng.random(n) < cfg.paid_ratio
    pre = rng.random(n) < PRE_START_SHARE
    signup = np.where(pre, -rng.integers(1, 366, n),
                      rng.integers(0, max(1, int(0.7 * days)), n)).astype(np.int32)
    z = rng.normal(0.0, 1.0, n) + 0.3 * paid + SOURCE_ENGAGEMENT[source]
    engagement = _sigmoid(0.9 * z - 0.2)
    churn_logit = (-0.7 * z - 0.5 * paid + SOURCE_CHURN[source] + 0.3 * (signup >= 0)
                   + rng.normal(0.0, 1.0, n))
    churner = rng.random(n) < _calibrate(churn_logit, cfg.churn_rate)
    # Churn early enough that a "no activity in the next 30 days" label can see it.
    horizon = min(30, days // 4)
    first = np.maximum(signup, 0) + 10
    span = np.maximum(days - horizon - first, 1)
    churn_day = np.where(churner, first + (rng.random(n) * span).astype(np.int32), days + 10**6)
    abrupt = rng.random(n) < 0.25
    decay_len = np.where(abrupt, 1.0, rng.uniform(10.0, 50.0, n)).astype(np.float32)
    latent = _Latent(
        signup=signup, paid=paid, engagement=engagement, churn_day=churn_day.astype(np.int64),
        decay_len=decay_len, decay_floor=rng.uniform(0.15, 0.65, n),
        skill=np.clip(rng.normal(62.0, 11.0, n) + 8.0 * z, 15.0, 95.0),
        price=PRICES[rng.choice(len(PRICES), size=n, p=[0.5, 0.35, 0.15])],
    )
    start = np.datetime64(cfg.start, "D")
    users = pd.DataFrame({
        "user_id": np.arange(1, n + 1, dtype=np.int64),
        "signup_date": (start + signup).astype("datetime64[ns]"),
        "plan": _strings(PLANS, paid.astype(np.int8)),
        "is_paid": paid.astype(np.int64),
        "country": _strings(COUNTRIES, country),
        "marketing_source": _strings(MARKETING_SOURCES, source),
    })
    return users, latent


def _strings(values: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    """pandas' default `str` dtype built in Arrow (fast for tens of millions of rows)."""
    arr = pa.array(values, type=pa.large_string()).take(pa.array(codes))
    dtype = pd.StringDtype("pyarrow", na_value=np.nan)
    return pd.Series(arr.to_pandas(types_mapper={pa.large_string(): dtype}.get), copy=False)


def _decay(lat: _Latent, user: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Churn fade multiplier: 1 far from the churn day, down to the floor just before it."""
    ramp = np.clip((lat.churn_day[user] - day) / lat.decay_len[user], 0.0, 1.0)
    floor = lat.decay_floor[user]
    return (floor + (1.0 - floor) * ramp).astype(np.float32)


def _mood(cfg: GeneratorConfig, rng: np.random.Generator, lat: _Latent) -> np.ndarray:
    """Users x days activity multiplier without churn: weekday rhythm, trends, temporary dips."""
    n, days = cfg.users, cfg.days
    day = np.arange(days, dtype=np.float32)
    weekday = np.asarray(np.datetime64(cfg.start, "D") + np.arange(days)).astype(np.int64)
    rhythm = np.where((weekday + 3) % 7 >= 5, 0.8, 1.05).astype(np.float32)  # Sat/Sun lower
    trend = rng.normal(0.0, 0.6, n).astype(np.float32)
    mood = np.exp(trend[:, None] * (day / days - 0.5)[None, :]) * rhythm[None, :]
    for _ in range(2):  # up to two dips (holidays, busy weeks) that recover
        has = rng.random(n) < 0.6
        begin = rng.integers(0, days, n)
        end = begin + rng.integers(5, 36, n)
        depth = rng.uniform(0.0, 0.25, n).astype(np.float32)
        inside = (day[None, :] >= begin[:, None]) & (day[None, :] < end[:, None]) & has[:, None]
        mood = np.where(inside, mood * depth[:, None], mood)
    return mood


def _session_events(cfg: GeneratorConfig, rng: np.random.Generator, lat: _Latent,
                    mood: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, day, type) for logins, enrolments, videos, quizzes and tickets on active days."""
    day = np.arange(cfg.days)
    alive = (day[None, :] >= lat.signup[:, None]) & (day[None, :] < lat.churn_day[:, None])
    p_user = (0.04 + 0.72 * lat.engagement).astype(np.float32)
    churn_day = lat.churn_day.astype(np.float32)[:, None]
    ramp = np.clip((churn_day - day.astype(np.float32)) / lat.decay_len[:, None], 0, 1)
    floor = lat.decay_floor.astype(np.float32)[:, None]
    prob = p_user[:, None] * mood * (floor + (1 - floor) * ramp).astype(np.float32)
    del ramp
    active = (rng.random(prob.shape, dtype=np.float32) < np.minimum(prob, 0.95)) & alive
    del prob, alive
    user, cell_day = np.nonzero(active)
    del active
    user, cell_day = user.astype(np.int32), cell_day.astype(np.int32)
    eng = lat.engagement[user]
    fade = _decay(lat, user, cell_day)
    vigour = mood[user, cell_day] * fade
    rates = {
        LOGIN: None,
        ENROLL: 0.03 + 0.05 * eng,
        VIDEO: (1.0 + 3.4 * eng) * vigour**0.7,
        QUIZ: (0.2 + 0.8 * eng) * vigour,
        TICKET: 0.01 + 0.10 * (1.0 - fade) + 0.02 * (1.0 - eng),
    }
    parts_user, parts_day, parts_type = [], [], []
    for etype, rate in rates.items():
        if rate is None:  # an active day always has at least one login
            count = 1 + rng.poisson(0.3 + 0.7 * eng)
        else:
            count = rng.poisson(rate)
        parts_user.append(np.repeat(user, count))
        parts_day.append(np.repeat(cell_day, count))
        parts_type.append(np.full(int(count.sum()), etype, dtype=np.int8))
    return np.concatenate(parts_user), np.concatenate(parts_day), np.concatenate(parts_type)


def _payment_events(cfg: GeneratorConfig, rng: np.random.Generator,
                    lat: _Latent) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monthly charges on the signup anniversary; failed charges retry after two days."""
    payer = np.flatnonzero(lat.paid).astype(np.int32)
    offset = np.mod(lat.signup[payer], 30)
    stop = np.minimum(lat.churn_day[payer], cfg.days)
    base_fail = 0.04 * (1.0 + 2.0 * cfg.drift) + 0.04 * (1.0 - lat.engagement[payer])
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for month in range(cfg.days // 30 + 2):
        due = offset + 30 * month
        pending = (due >= np.maximum(lat.signup[payer], 0)) & (due < stop)
        for attempt in range(3):
            day = due + 2 * attempt
            pending &= day < stop
            who, when = payer[pending], day[pending]
            fail_p = base_fail[pending] + 0.45 * (1.0 - _decay(lat, who, when))
            failed = rng.random(who.size) < fail_p
            parts.append((who, when, np.where(failed, PAY_FAIL, PAY_OK).astype(np.int8)))
            pending[pending] = failed
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def generate(config: GeneratorConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (users, events); identical for identical configs."""
    rng = np.random.Generator(np.random.PCG64(config.seed))
    users, lat = _make_users(config, rng)
    mood = _mood(config, rng, lat)
    s_user, s_day, s_type = _session_events(config, rng, lat, mood)
    p_user, p_day, p_type = _payment_events(config, rng, lat)
    user = np.concatenate([s_user, p_user])
    day = np.concatenate([s_day, p_day])
    etype = np.concatenate([s_type, p_type])
    del s_user, s_day, s_type
    # uint32 seconds since start sort faster than int64 (days <= 40000 keeps them in range)
    second = day.astype(np.uint32) * np.uint32(86_400)
    second += rng.integers(0, 86_400, user.size, dtype=np.uint32)
    order = np.argsort(second)
    user, day, etype, second = user[order], day[order], etype[order], second[order]
    del order
    n = user.size

    def vigour(idx: np.ndarray) -> np.ndarray:
        return mood[user[idx], day[idx]] * _decay(lat, user[idx], day[idx])

    has_course = (etype == ENROLL) | (etype == VIDEO) | (etype == QUIZ)
    idx = np.flatnonzero(has_course)
    popularity = 1.0 / np.arange(1, N_COURSES + 1) ** 0.8
    favourites = rng.choice(N_COURSES, size=(config.users, 3), p=popularity / popularity.sum())
    course = favourites[user[idx], rng.integers(0, 3, idx.size)]
    wander = rng.random(idx.size) < 0.15
    course[wander] = rng.integers(0, N_COURSES, int(wander.sum()))
    course_values = np.zeros(n, dtype=np.int64)
    course_values[idx] = course + 1

    watch = np.zeros(n)
    idx = np.flatnonzero(etype == VIDEO)
    mean = (6.0 + 26.0 * lat.engagement[user[idx]]) * np.sqrt(vigour(idx))
    mean *= np.exp(-0.5 * config.drift)
    watch[idx] = np.round(np.clip(mean * rng.lognormal(0.0, 0.7, idx.size), 0.5, 300.0), 2)

    quiz = np.full(n, np.nan)
    idx = np.flatnonzero(etype == QUIZ)
    score = lat.skill[user[idx]] - 20.0 * (1.0 - np.minimum(vigour(idx), 1.0))
    quiz[idx] = np.round(np.clip(score + rng.normal(0.0, 13.0, idx.size), 0.0, 100.0), 1)

    paying = (etype == PAY_OK) | (etype == PAY_FAIL)
    amount = np.zeros(n)
    amount[paying] = lat.price[user[paying]]
    del mood, day
    start_ns = np.datetime64(config.start, "ns").astype(np.int64)
    events = pd.DataFrame({
        "event_id": np.arange(1, n + 1, dtype=np.int64),
        "user_id": user.astype(np.int64) + 1,
        "event_time": (start_ns + second * np.int64(1_000_000_000)).view("datetime64[ns]"),
        "event_type": _strings(EVENT_TYPES, etype),
        "course_id": pd.arrays.IntegerArray(course_values, ~has_course),
        "watch_minutes": watch,
        "quiz_score": quiz,
        "amount": amount,
    }, copy=False)
    return users, events


def write_dataset(users: pd.DataFrame, events: pd.DataFrame, out_dir: Path,
                  fmt: Literal["parquet", "csv"]) -> dict[str, Path]:
    """Write users.<ext> and events.<ext>; each appears complete or not at all."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"unknown format {fmt!r}; use parquet or csv")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in (("users", users), ("events", events)):
        target = out_dir / f"{name}.{fmt}"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        paths[name] = target
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write synthetic churn users + events.")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--users", type=int, default=GeneratorConfig.users)
    parser.add_argument("--days", type=int, default=GeneratorConfig.days)
    parser.add_argument("--seed", type=int, default=GeneratorConfig.seed)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=GeneratorConfig.start)
    parser.add_argument("--paid-ratio", type=float, default=GeneratorConfig.paid_ratio)
    parser.add_argument("--churn-rate", type=float, default=GeneratorConfig.churn_rate)
    parser.add_argument("--drift", type=float, default=GeneratorConfig.drift)
    args = parser.parse_args(argv)
    try:
        config = GeneratorConfig(users=args.users, days=args.days, start=args.start,
                                 seed=args.seed, paid_ratio=args.paid_ratio,
                                 churn_rate=args.churn_rate, drift=args.drift)
    except ValueError as exc:
        parser.error(str(exc))
    began = time.perf_counter()
    users, events = generate(config)
    paths = write_dataset(users, events, args.out, args.format)
    print(f"wrote {len(users)} users, {len(events)} events to {paths['users'].parent} "
          f"({args.format}, seed {config.seed}) in {time.perf_counter() - began:.2f}s")


if __name__ == "__main__":
    main()
