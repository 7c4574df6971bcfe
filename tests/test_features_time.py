"""The ML core's time guarantees, property by property: no look-ahead in features, labels from
the horizon only and from the user's own activity, an embargoed split, as-of attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnctl.domain import features as F
from churnctl.domain.schema import EVENT_TYPES

START = pd.Timestamp("2025-01-01")
DAYS = 60
CONFIG = F.FeatureConfig(windows=(7, 14), label_horizon_days=10, snapshot_every_days=2,
                         active_within_days=30)
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _users(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": np.arange(1, n + 1), "signup_date": [START - pd.Timedelta(days=5)] * n,
        "plan": ["paid", "free"] * (n // 2), "is_paid": [1, 0] * (n // 2),
        "country": ["IN"] * n, "marketing_source": ["organic"] * n})


def _events(rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    """(user, day, type) triples; the first and last day are pinned so the grid is stable."""
    rows = [(1, 0, "login"), (2, DAYS - 1, "login"), *rows]
    return pd.DataFrame({
        "event_id": np.arange(len(rows)), "user_id": [r[0] for r in rows],
        "event_time": [START + pd.Timedelta(days=r[1], hours=12) for r in rows],
        "event_type": [r[2] for r in rows], "course_id": pd.array([None] * len(rows), "Int64"),
        "watch_minutes": [5.0 if r[2] == "video_watch" else 0.0 for r in rows],
        "quiz_score": [70.0 if r[2] == "quiz_attempt" else np.nan for r in rows],
        "amount": [9.99 if r[2].startswith("payment") else 0.0 for r in rows]})


event = st.tuples(st.integers(1, 6), st.integers(0, DAYS - 1), st.sampled_from(EVENT_TYPES))
events = st.lists(event, min_size=5, max_size=60)


def _snapshot(users: pd.DataFrame, frame: pd.DataFrame, day: int,
              config: F.FeatureConfig = CONFIG, labels: bool = True) -> pd.DataFrame:
    activity = F.daily_activity(users, frame, config.activity_events)
    return F.snapshots(activity, users, [day], config, with_labels=labels) \
        .set_index("user_id").sort_index()


@FAST
@given(base=events, later=events, day=st.integers(20, DAYS - 12))
def test_features_use_only_events_up_to_the_snapshot_day(base, later, day) -> None:
    users = _users()
    before = _snapshot(users, _events(base), day, labels=False)
    future = [(u, d, k) for u, d, k in later if d > day]
    after = _snapshot(users, _events(base + future), day, labels=False)
    # Later events may only add a user to the population (none active yet is not a row) - they
    # never change a row that exists.
    common = before.index.intersection(after.index)
    assert len(common) == len(before)
    pd.testing.assert_frame_equal(before.loc[common], after.loc[common])


@FAST
@given(base=events, day=st.integers(20, DAYS - 12), user=st.integers(1, 6))
def test_an_event_on_the_snapshot_day_does_change_the_features(base, day, user) -> None:
    users = _users()
    before = _snapshot(users, _events(base), day, labels=False)
    after = _snapshot(users, _events([*base, (user, day, "video_watch")]), day, labels=False)
    if user in before.index:
        assert after.loc[user, "events_7d"] == before.loc[user, "events_7d"] + 1
    assert after.loc[user, "days_since_last_activity"] == 0  # now in the population, if not yet


@FAST
@given(base=events, extra=events, day=st.integers(20, DAYS - 12))
def test_labels_depend_only_on_the_horizon_after_the_snapshot(base, extra, day) -> None:
    users = _users()
    horizon = CONFIG.label_horizon_days
    reference = _snapshot(users, _events(base), day)[F.LABEL]
    # Events past the horizon change no label; user activity inside it clears one.
    outside = [(u, d, k) for u, d, k in extra if d > day + horizon]
    moved = _snapshot(users, _events(base + outside), day)[F.LABEL]
    pd.testing.assert_series_equal(reference, moved.loc[reference.index])
    inside = [(u, d, "login") for u, d, _ in extra if day < d <= day + horizon]
    if inside:
        relabelled = _snapshot(users, _events(base + inside), day)[F.LABEL]
        for u in {u for u, _, _ in inside} & set(reference.index):
            assert relabelled[u] == 0  # activity inside the horizon: not churned


def test_billing_after_leaving_does_not_keep_a_user_alive() -> None:
    users = _users()
    quiet_then_billed = [(3, 30, "login"), (3, 35, "payment_success"), (3, 37, "payment_failed")]
    label = _snapshot(users, _events(quiet_then_billed), 30)[F.LABEL]
    assert label[3] == 1  # only the system acted in the horizon
    counting_payments = F.FeatureConfig(**{**CONFIG.__dict__,
                                           "activity_events": tuple(EVENT_TYPES)})
    assert _snapshot(users, _events(quiet_then_billed), 30, counting_payments)[F.LABEL][3] == 0


def test_the_generator_bills_users_after_they_leave() -> None:
    from churnctl.domain.generator import GeneratorConfig, generate

    _, frame = generate(GeneratorConfig(users=600, days=120, seed=3))
    own = frame[~frame["event_type"].str.startswith("payment_")].groupby("user_id")["event_time"]
    billed = frame[frame["event_type"].str.startswith("payment_")].groupby("user_id")["event_time"]
    after = (billed.max() - own.max()).dropna()
    assert (after > pd.Timedelta(days=3)).sum() >= 10  # renewals and retries of gone users


@FAST
@given(dates=st.integers(3, 40), every=st.integers(1, 5), fraction=st.floats(0.05, 0.5),
       horizon=st.integers(1, 30), extra=st.integers(0, 10))
def test_no_training_label_window_reaches_the_test_period(dates, every, fraction, horizon,
                                                          extra) -> None:
    as_of = [START + pd.Timedelta(days=i * every) for i in range(dates)]
    frame = pd.DataFrame({"as_of": np.repeat(as_of, 3), "x": np.arange(3 * dates)})
    embargo = horizon + extra
    try:
        train, test = F.time_split(frame, fraction, embargo)
    except ValueError as exc:
        assert "no training snapshot" in str(exc)
        return
    last_label_day = train["as_of"].max() + pd.Timedelta(days=horizon)
    assert last_label_day <= test["as_of"].min()  # labels end by the first test snapshot
    assert (train["as_of"].max() + pd.Timedelta(days=embargo)) <= test["as_of"].min()
    assert len(set(train["x"]) & set(test["x"])) == 0


def test_the_embargo_cannot_be_shorter_than_the_horizon() -> None:
    with pytest.raises(ValueError, match="shorter than the label horizon"):
        F.FeatureConfig(label_horizon_days=30, embargo_days=10)
    from churnctl.backends.features_pandas import PandasFeaturesOptions

    with pytest.raises(ValueError, match="at least label_horizon_days"):
        PandasFeaturesOptions(embargo_days=5)


def test_static_attributes_are_joined_as_of_the_snapshot_day() -> None:
    users = _users()
    history = pd.concat([users, users[users["user_id"] == 1].assign(
        plan="free", is_paid=0, valid_from=START + pd.Timedelta(days=40))])
    history["valid_from"] = history["valid_from"].fillna(START - pd.Timedelta(days=5))
    frame = _events([(1, d, "login") for d in range(0, DAYS, 2)])
    before = _snapshot(history, frame, 30, labels=False)
    after = _snapshot(history, frame, 50, labels=False)
    assert before.loc[1, "plan"] == "paid" and before.loc[1, "is_paid"] == 1.0
    assert after.loc[1, "plan"] == "free" and after.loc[1, "is_paid"] == 0.0
    assert len(before) == len(set(before.index))  # one row per user, history or not


def test_the_pipeline_split_is_embargoed(tmp_path) -> None:
    """The features stage's own output: labels of the last training snapshot end before the
    first test snapshot (the generator's default data)."""
    from churnctl.domain.generator import GeneratorConfig, generate

    users, frame = generate(GeneratorConfig(users=300, days=120, seed=1))
    config = F.FeatureConfig()
    activity = F.daily_activity(users, frame, config.activity_events)
    labelled = F.snapshots(activity, users, F.training_days(activity, config), config, True)
    train, test = F.time_split(labelled, config.test_fraction, config.embargo)
    gap = (test["as_of"].min() - train["as_of"].max()).days
    assert gap >= config.label_horizon_days
