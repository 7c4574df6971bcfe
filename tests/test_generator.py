"""The synthetic data generator: deterministic, schema-exact, realistic enough to learn from."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnctl.domain.generator import GeneratorConfig, generate, write_dataset
from churnctl.domain.schema import COUNTRIES, EVENT_TYPES, MARKETING_SOURCES, PLANS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "churnctl" / "backends" / "scripts" / "generate_data.sh"
USER_COLUMNS = ["user_id", "signup_date", "plan", "is_paid", "country", "marketing_source"]
EVENT_COLUMNS = ["event_id", "user_id", "event_time", "event_type", "course_id",
                 "watch_minutes", "quiz_score", "amount"]
COURSE_TYPES = ["course_enroll", "video_watch", "quiz_attempt"]
PAYMENT_TYPES = ["payment_success", "payment_failed"]


@pytest.fixture(scope="module")
def default_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(GeneratorConfig())


def _day(config: GeneratorConfig, times: pd.Series) -> np.ndarray:
    return ((times - pd.Timestamp(config.start)) // pd.Timedelta(days=1)).to_numpy()


def _measured_churn(config: GeneratorConfig, events: pd.DataFrame) -> float:
    """Share of users active before the last 30 days with no activity of their own in the last
    30 days (charges keep coming for a while after a user leaves: they do not count)."""
    events = events[~events["event_type"].isin(PAYMENT_TYPES)]
    day = _day(config, events["event_time"])
    early = set(events["user_id"][day < config.days - 30])
    late = set(events["user_id"][day >= config.days - 30])
    return len(early - late) / len(early)


def test_same_config_gives_identical_frames() -> None:
    config = GeneratorConfig(users=500, days=60, seed=11)
    users_a, events_a = generate(config)
    users_b, events_b = generate(config)
    pd.testing.assert_frame_equal(users_a, users_b)
    pd.testing.assert_frame_equal(events_a, events_b)


def test_different_seed_gives_different_data() -> None:
    users_a, events_a = generate(GeneratorConfig(users=500, days=60, seed=11))
    users_b, events_b = generate(GeneratorConfig(users=500, days=60, seed=12))
    assert not users_a.equals(users_b)
    assert len(events_a) != len(events_b) or not events_a.equals(events_b)


def test_schema_and_dtypes(default_data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    users, events = default_data
    assert list(users.columns) == USER_COLUMNS
    assert list(events.columns) == EVENT_COLUMNS
    for frame, column in [(users, "user_id"), (users, "is_paid"), (events, "event_id"),
                          (events, "user_id")]:
        assert frame[column].dtype == np.int64, column
    assert users["signup_date"].dtype == "datetime64[ns]"
    assert (users["signup_date"] == users["signup_date"].dt.normalize()).all()
    assert events["event_time"].dtype == "datetime64[ns]"
    for column in ("plan", "country", "marketing_source"):
        assert pd.api.types.is_string_dtype(users[column]), column
    assert pd.api.types.is_string_dtype(events["event_type"])
    assert events["course_id"].dtype == pd.Int64Dtype()
    for column in ("watch_minutes", "quiz_score", "amount"):
        assert events[column].dtype == np.float64, column


def test_no_latent_variables_leak(default_data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    users, events = default_data
    names = " ".join([*users.columns, *events.columns]).lower()
    for hidden in ("engagement", "churn", "latent", "propensity", "decay", "skill", "score_"):
        assert hidden not in names


def test_value_domains(default_data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    config = GeneratorConfig()
    users, events = default_data
    assert users["user_id"].tolist() == list(range(1, config.users + 1))
    assert set(users["plan"]) == set(PLANS)
    assert (users["is_paid"] == (users["plan"] == "paid").astype(int)).all()
    assert 0.30 < users["is_paid"].mean() < 0.40  # paid_ratio 0.35, 2000 users
    assert set(users["country"]) == set(COUNTRIES)
    assert set(users["marketing_source"]) == set(MARKETING_SOURCES)
    signup = _day(config, users["signup_date"])
    assert (signup < 0).any() and (signup >= 0).any()  # some before the window, some inside
    assert signup.max() < 0.7 * config.days

    kind = events["event_type"]
    assert set(kind) == set(EVENT_TYPES)
    course = kind.isin(COURSE_TYPES)
    assert events["course_id"].notna().eq(course).all()
    assert (events.loc[course, "course_id"] >= 1).all()
    video, quiz, paying = kind == "video_watch", kind == "quiz_attempt", kind.isin(PAYMENT_TYPES)
    assert (events.loc[video, "watch_minutes"] > 0).all()
    assert (events.loc[~video, "watch_minutes"] == 0).all()
    assert events["quiz_score"].notna().eq(quiz).all()
    assert events.loc[quiz, "quiz_score"].between(0, 100).all()
    assert (events.loc[paying, "amount"] > 0).all()
    assert (events.loc[~paying, "amount"] == 0).all()
    payers = set(events.loc[paying, "user_id"])
    assert payers <= set(users.loc[users["is_paid"] == 1, "user_id"])
    assert 150_000 < len(events) < 600_000  # "a few hundred thousand" at the default size


def test_event_ids_order_and_time_window(default_data: tuple[pd.DataFrame, pd.DataFrame],
                                         ) -> None:
    config = GeneratorConfig()
    users, events = default_data
    assert events["event_id"].tolist() == list(range(1, len(events) + 1))
    assert events["event_time"].is_monotonic_increasing  # ids follow time, so ties are ordered
    start = pd.Timestamp(config.start)
    assert events["event_time"].min() >= start
    assert events["event_time"].max() < start + pd.Timedelta(days=config.days)
    assert set(events["user_id"]) <= set(users["user_id"])
    signup = events["user_id"].map(users.set_index("user_id")["signup_date"])
    assert (events["event_time"] >= signup).all()


@pytest.mark.parametrize("rate", [0.1, 0.35, 0.6])
def test_churn_rate_follows_config(rate: float) -> None:
    # Tolerance 0.05: with 3000 users the binomial standard error is <= 0.009 (3 SE ~ 0.027).
    # On top, churners who leave before their first event drop out of the denominator, a few
    # late sign-ups churn inside the last 30 days and a few loyal users go quiet for 30 days by
    # chance (about -0.01 net). Seeds 1-5 measure within 0.02 of 0.1, 0.35 and 0.6.
    config = GeneratorConfig(users=3000, churn_rate=rate, seed=5)
    _, events = generate(config)
    assert abs(_measured_churn(config, events) - rate) < 0.05


def test_no_churn_and_all_churn_extremes() -> None:
    config = GeneratorConfig(users=1000, churn_rate=0.0)
    assert _measured_churn(config, generate(config)[1]) < 0.03
    config = GeneratorConfig(users=1000, churn_rate=1.0)
    assert _measured_churn(config, generate(config)[1]) > 0.97


def test_drift_shifts_distributions() -> None:
    base_users, base_events = generate(GeneratorConfig(users=4000, seed=9))
    users, events = generate(GeneratorConfig(users=4000, seed=9, drift=0.6))

    def share(frame: pd.DataFrame, column: str, value: str) -> float:
        return float((frame[column] == value).mean())

    def fail_rate(frame: pd.DataFrame) -> float:
        kind = frame["event_type"]
        return float((kind == "payment_failed").sum() / kind.isin(PAYMENT_TYPES).sum())

    def watch(frame: pd.DataFrame) -> float:
        return float(frame.loc[frame["event_type"] == "video_watch", "watch_minutes"].mean())

    assert share(users, "country", "IN") > share(base_users, "country", "IN") + 0.08
    assert share(users, "marketing_source", "ads") > share(base_users, "marketing_source",
                                                           "ads") + 0.08
    assert watch(events) < 0.85 * watch(base_events)
    assert fail_rate(events) > 1.3 * fail_rate(base_events)


def _same_table(read: pd.DataFrame, written: pd.DataFrame) -> None:
    """Equal values and dtypes, text columns compared as text: pandas 2 reads Arrow strings
    back as object, pandas 3 as its `str` dtype (which one depends on what else is installed)."""
    pd.testing.assert_frame_equal(read, written, check_dtype=False)
    for column in written.columns:
        if pd.api.types.is_string_dtype(written[column]):
            assert pd.api.types.is_string_dtype(read[column]), column
        else:
            assert read[column].dtype == written[column].dtype, column


def test_write_dataset_parquet_round_trip(tmp_path: Path) -> None:
    users, events = generate(GeneratorConfig(users=200, days=50, seed=3))
    paths = write_dataset(users, events, tmp_path / "out", "parquet")
    assert paths == {"users": tmp_path / "out" / "users.parquet",
                     "events": tmp_path / "out" / "events.parquet"}
    _same_table(pd.read_parquet(paths["users"]), users)
    _same_table(pd.read_parquet(paths["events"]), events)


def test_write_dataset_csv_is_atomic_and_readable(tmp_path: Path) -> None:
    users, events = generate(GeneratorConfig(users=200, days=50, seed=3))
    paths = write_dataset(users, events, tmp_path, "csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "users.csv"]
    back = pd.read_csv(paths["events"], parse_dates=["event_time"])
    assert len(back) == len(events)
    assert (back["event_time"] == events["event_time"]).all()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(paths["users"].stat().st_mode) == 0o666 & ~umask

    broken = events.assign(amount=["x", 1.0] * (len(events) // 2) + ["x"] * (len(events) % 2))
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's error type varies by version
        write_dataset(users, broken, tmp_path / "bad", "parquet")
    assert [p.name for p in (tmp_path / "bad").iterdir()] == ["users.parquet"]  # no temp left
    with pytest.raises(ValueError, match="unknown format"):
        write_dataset(users, events, tmp_path, "xlsx")  # type: ignore[arg-type]


def test_config_rejects_nonsense() -> None:
    for bad in ({"users": 0}, {"days": 0}, {"seed": -1}, {"paid_ratio": 1.5},
                {"churn_rate": -0.1}, {"drift": -1.0}):
        with pytest.raises(ValueError):
            GeneratorConfig(**bad)  # type: ignore[arg-type]


def test_shell_script_writes_both_files(tmp_path: Path) -> None:
    assert os.access(SCRIPT, os.X_OK)
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "data"
    done = subprocess.run(
        [str(SCRIPT), str(out), "300", "60", "5", "parquet", "--drift", "0.2"],
        env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1 and "300 users" in done.stdout
    users, events = generate(GeneratorConfig(users=300, days=60, seed=5, drift=0.2))
    _same_table(pd.read_parquet(out / "users.parquet"), users)
    _same_table(pd.read_parquet(out / "events.parquet"), events)

    done = subprocess.run([str(SCRIPT), str(out), "many"], env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 2 and "whole numbers" in done.stderr


def _user_features(config: GeneratorConfig, users: pd.DataFrame, events: pd.DataFrame,
                   cutoff: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-user activity features over the 30 days before `cutoff`; label = silent 30 days after."""
    day = _day(config, events["event_time"])
    before = events[(day >= cutoff - 30) & (day < cutoff)].assign(day=day[(day >= cutoff - 30)
                                                                         & (day < cutoff)])
    grouped = before.groupby("user_id")
    kind = before["event_type"]
    features = pd.DataFrame({
        "active_days_7d": before[before["day"] >= cutoff - 7].groupby("user_id")["day"].nunique(),
        "active_days_30d": grouped["day"].nunique(),
        "events_30d": grouped.size(),
        "watch_minutes_30d": grouped["watch_minutes"].sum(),
        "quiz_avg_30d": grouped["quiz_score"].mean(),
        "payment_failed_30d": (kind == "payment_failed").groupby(before["user_id"]).sum(),
        "support_ticket_30d": (kind == "support_ticket").groupby(before["user_id"]).sum(),
        "days_since_last": cutoff - 1 - grouped["day"].max(),
    }).fillna({"active_days_7d": 0, "quiz_avg_30d": 50.0})
    static = users.set_index("user_id")
    signup = _day(config, static["signup_date"])
    features["is_paid"] = static["is_paid"]
    features["days_since_signup"] = pd.Series(cutoff - signup, index=static.index)
    features = features[features["days_since_signup"] >= 14]
    after = set(events.loc[(day >= cutoff) & (day < cutoff + 30), "user_id"])
    label = (~features.index.isin(list(after))).astype(int)
    return features, label


def test_signal_is_learnable_but_not_trivial() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = GeneratorConfig()
    users, events = generate(config)
    features, label = _user_features(config, users, events, cutoff=80)
    assert 0.1 < label.mean() < 0.5  # active users who then go silent are a minority
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_predict(model, features, label, cv=5, method="predict_proba")[:, 1]
    auc = roc_auc_score(label, scores)
    assert 0.65 < auc < 0.97, auc
    for column in features.columns:  # no single column gives the answer away
        single = roc_auc_score(label, features[column])
        assert max(single, 1 - single) < 0.95, (column, single)
    for column in ("plan", "country", "marketing_source"):
        codes = users.set_index("user_id").loc[features.index, column].astype("category")
        single = roc_auc_score(label, codes.cat.codes)
        assert max(single, 1 - single) < 0.75, (column, single)
