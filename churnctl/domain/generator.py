"""Vectorized, deterministic synthetic users + events for the churn data model (DESIGN.md §2).

Each user carries hidden latent state (engagement, churn propensity, churn day, decay shape)
that shapes their events but is never output: the original system leaked its latent
`engagement_score` into training. Churners fade out before they stop, but loyal users also have
lulls and slow trends, and a third of churners stop abruptly, so the signal is learnable but
far from perfect. Work is numpy over all users at once; Python loops run only over days, event
types, billing months and payment retries. Drift applies to the whole generated window.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import time
from dataclasses import dataclass, fields
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
# Leaving is not cancelling: a subscription keeps renewing (and retrying failed charges) for up
# to a billing cycle after its user has gone, as on real platforms.
CANCEL_LAG_DAYS = 30


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
        if self.users < 1 or not 1 <= self.days <= 40_000 or self.seed < 0:
            raise ValueError("users must be >= 1, days in 1..40000 and seed >= 0")
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
    churn_day: np.ndarray  # first day without activity; far beyond the window for non-churners
    decay_len: np.ndarray  # days over which activity fades before churn (1 = abrupt stop)
    decay_floor: np.ndarray
    trend: np.ndarray  # slow drift of activity over the window, churner or not
    dip_begin: np.ndarray  # (2, users): temporary lulls that recover (holidays, busy weeks)
    dip_end: np.ndarray
    dip_depth: np.ndarray
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
    churn_logit = (-0.7 * z - 0.5 * paid + SOURCE_CHURN[source] + 0.3 * (signup >= 0)
                   + rng.normal(0.0, 1.0, n))
    churner = rng.random(n) < _calibrate(churn_logit, cfg.churn_rate)
    # Churn early enough that a "no activity in the next 30 days" label can see it.
    first = np.maximum(signup, 0) + 10
    span = np.maximum(days - min(30, days // 4) - first, 1)
    churn_day = np.where(churner, first + (rng.random(n) * span).astype(np.int32), days + 10**6)
    abrupt = rng.random(n) < 0.35
    dipped = rng.random((2, n)) < 0.6
    dip_begin = rng.integers(0, days, (2, n))
    latent = _Latent(
        signup=signup, paid=paid, engagement=_sigmoid(0.9 * z - 0.2), churn_day=churn_day,
        decay_len=np.where(abrupt, 1.0, rng.uniform(10.0, 50.0, n)),
        decay_floor=rng.uniform(0.2, 0.75, n), trend=rng.normal(0.0, 0.6, n),
        dip_begin=dip_begin, dip_end=dip_begin + rng.integers(5, 36, (2, n)),
        dip_depth=np.where(dipped, rng.uniform(0.0, 0.2, (2, n)), 1.0),
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
    """pandas' default `str` dtype, built in Arrow (fast for tens of millions of rows)."""
    arr = pa.array(values, type=pa.large_string()).take(pa.array(codes))
    dtype = pd.StringDtype("pyarrow", na_value=np.nan)
    return pd.Series(arr.to_pandas(types_mapper={pa.large_string(): dtype}.get), copy=False)


def _decay(lat: _Latent, user: np.ndarray | slice, day: np.ndarray | int) -> np.ndarray:
    """Churn fade multiplier: 1 far from the churn day, down to the floor just before it."""
    ramp = np.clip((lat.churn_day[user] - day) / lat.decay_len[user], 0.0, 1.0)
    floor = lat.decay_floor[user]
    return floor + (1.0 - floor) * ramp


def _mood(lat: _Latent, day: int, days: int) -> np.ndarray:
    """Every user's activity multiplier on `day`, churn aside: slow trend times any dip."""
    inside = (lat.dip_begin <= day) & (day < lat.dip_end)
    return np.exp(lat.trend * (day / days - 0.5)) * np.where(inside, lat.dip_depth, 1.0).prod(0)


def _payment_events(cfg: GeneratorConfig, rng: np.random.Generator,
                    lat: _Latent) -> tuple[np.ndarray, ...]:
    """Monthly charges on the signup anniversary; failed charges retry after two days. Charges
    go on for CANCEL_LAG_DAYS after a user's last activity."""
    payer = np.flatnonzero(lat.paid).astype(np.int32)
    offset = np.mod(lat.signup[payer], 30)
    stop = np.minimum(lat.churn_day[payer] + CANCEL_LAG_DAYS, cfg.days)
    base_fail = 0.04 * (1.0 + 2.0 * cfg.drift) + 0.04 * (1.0 - lat.engagement[payer])
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for month in range(cfg.days // 30 + 2):
        due = offset + 30 * month
        pending = (due >= np.maximum(lat.signup[payer], 0)) & (due < stop)
        for attempt in range(3):
            day = due + 2 * attempt
            pending &= day < stop
            who, when = payer[pending], day[pending]
            failed = rng.random(who.size) < base_fail[pending] + 0.45 * (1 - _decay(lat, who, when))
            parts.append((who, when, np.where(failed, PAY_FAIL, PAY_OK).astype(np.int8)))
            pending[pending] = failed
    user, day, etype = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.argsort(day, kind="stable")
    return user[order], day[order], etype[order]


def _events(cfg: GeneratorConfig, rng: np.random.Generator,
            lat: _Latent) -> tuple[np.ndarray, ...]:
    """(user, type, seconds since start, vigour) of every event, in time order.

    One pass per day keeps memory linear in users and sorts only each day's events.
    """
    pay_user, pay_day, pay_type = _payment_events(cfg, rng, lat)
    bounds = np.searchsorted(pay_day, np.arange(cfg.days + 1))
    weekday = np.asarray(np.datetime64(cfg.start, "D") + np.arange(cfg.days)).astype(np.int64)
    rhythm = np.where((weekday + 3) % 7 >= 5, 0.8, 1.05)  # Saturday and Sunday are quieter
    p_user = 0.04 + 0.72 * lat.engagement
    chunks = []
    for day in range(cfg.days):
        fade = _decay(lat, slice(None), day)
        vigour = rhythm[day] * _mood(lat, day, cfg.days) * fade
        alive = (lat.signup <= day) & (day < lat.churn_day)
        draw = rng.random(cfg.users) < np.minimum(p_user * vigour, 0.95)
        user = np.flatnonzero(alive & draw).astype(np.int32)
        eng, vig = lat.engagement[user], vigour[user]
        counts = {  # an active day always has a login
            LOGIN: 1 + rng.poisson(0.3 + 0.7 * eng),
            ENROLL: rng.poisson(0.03 + 0.05 * eng),
            VIDEO: rng.poisson((1.0 + 3.4 * eng) * vig**0.7),
            QUIZ: rng.poisson((0.2 + 0.8 * eng) * vig),
            TICKET: rng.poisson(0.01 + 0.10 * (1 - fade[user]) + 0.02 * (1 - eng)),
        }
        paid = slice(bounds[day], bounds[day + 1])
        who = np.concatenate([*(np.repeat(user, c) for c in counts.values()), pay_user[paid]])
        etype = np.concatenate([*(np.full(c.sum(), k, np.int8) for k, c in counts.items()),
                                pay_type[paid]])
        second = rng.integers(0, 86_400, who.size, dtype=np.uint32)
        order = np.argsort(second)
        who = who[order]
        # uint32 holds seconds for up to 49,710 days
        chunks.append((who, etype[order], second[order] + np.uint32(day * 86_400),
                       vigour[who].astype(np.float32)))
    return tuple(np.concatenate(c) for c in zip(*chunks, strict=True))


def _course_ids(config: GeneratorConfig, rng: np.random.Generator, user: np.ndarray,
                etype: np.ndarray) -> pd.arrays.IntegerArray:
    """Mostly one of the user's three favourite courses; popular courses are favoured."""
    has_course = (etype == ENROLL) | (etype == VIDEO) | (etype == QUIZ)
    idx = np.flatnonzero(has_course)
    popularity = 1.0 / np.arange(1, N_COURSES + 1) ** 0.8
    favourites = rng.choice(N_COURSES, size=(config.users, 3), p=popularity / popularity.sum())
    course = favourites.astype(np.int16)[user[idx], rng.integers(0, 3, idx.size)]
    wander = rng.random(idx.size) < 0.15
    course[wander] = rng.integers(0, N_COURSES, int(wander.sum()))
    values = np.zeros(user.size, dtype=np.int64)
    values[idx] = course + 1
    return pd.arrays.IntegerArray(values, ~has_course)


def _measures(config: GeneratorConfig, rng: np.random.Generator, lat: _Latent,
              user: np.ndarray, etype: np.ndarray, vigour: np.ndarray) -> dict[str, np.ndarray]:
    """watch_minutes, quiz_score and amount; a fading user watches less and scores lower."""
    watch = np.zeros(user.size)
    idx = np.flatnonzero(etype == VIDEO)
    mean = (6.0 + 26.0 * lat.engagement[user[idx]]) * np.sqrt(vigour[idx])
    mean *= np.exp(-0.5 * config.drift) * rng.lognormal(0.0, 0.7, idx.size)
    watch[idx] = np.round(np.clip(mean, 0.5, 300.0), 2)
    del mean
    quiz = np.full(user.size, np.nan)
    idx = np.flatnonzero(etype == QUIZ)
    score = lat.skill[user[idx]] - 20.0 * (1.0 - np.minimum(vigour[idx], 1.0))
    quiz[idx] = np.round(np.clip(score + rng.normal(0.0, 13.0, idx.size), 0.0, 100.0), 1)
    del score
    amount = np.zeros(user.size)
    idx = np.flatnonzero((etype == PAY_OK) | (etype == PAY_FAIL))
    amount[idx] = lat.price[user[idx]]
    return {"watch_minutes": watch, "quiz_score": quiz, "amount": amount}


def generate(config: GeneratorConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (users, events); identical for identical configs."""
    return generate_with(config, np.random.Generator(np.random.PCG64(config.seed)))


def generate_with(config: GeneratorConfig, rng: np.random.Generator,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """generate() drawing from `rng`: users 1..config.users, event ids 1..N in time order
    (generator_chunks.py makes each block of users with its own stream)."""
    users, lat = _make_users(config, rng)
    user, etype, second, vigour = _events(config, rng, lat)
    course = _course_ids(config, rng, user, etype)
    measures = _measures(config, rng, lat, user, etype, vigour)
    del vigour
    start_ns = np.datetime64(config.start, "ns").astype(np.int64)
    times = second * np.int64(1_000_000_000)
    times += start_ns
    del second
    events = pd.DataFrame({
        "event_id": np.arange(1, user.size + 1, dtype=np.int64),
        "user_id": user.astype(np.int64) + 1,
        "event_time": times.view("datetime64[ns]"),
        "event_type": _strings(EVENT_TYPES, etype),
        "course_id": course,
        **measures,
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
        # A fresh name rather than mkstemp, whose 0600 mode would make the data owner-only.
        tmp = out_dir / f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
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
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    for field in fields(GeneratorConfig):  # --users, --days, --start, --seed, --paid-ratio, ...
        kind = dt.date.fromisoformat if field.name == "start" else type(field.default)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=field.default)
    args = parser.parse_args(argv)
    try:
        config = GeneratorConfig(**{f.name: getattr(args, f.name) for f in fields(GeneratorConfig)})
    except ValueError as exc:
        parser.error(str(exc))
    began = time.perf_counter()
    users, events = generate(config)
    paths = write_dataset(users, events, args.out, args.format)
    print(f"wrote {len(users)} users, {len(events)} events to {paths['users'].parent} "
          f"({args.format}, seed {config.seed}) in {time.perf_counter() - began:.2f}s")


if __name__ == "__main__":
    main()
