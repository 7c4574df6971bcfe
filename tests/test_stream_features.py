"""The scorer's online features equal the batch features (domain/features.py) for the same
events, and its store resumes from state that matches its offsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnctl.domain.features import FeatureConfig, daily_activity, snapshots
from churnctl.domain.generator import GeneratorConfig, generate
from churnctl.streaming.online_state import OnlineStore, UserState, day_number, window_features


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), as_of=st.integers(35, 59))
def test_online_features_equal_batch_snapshot(seed: int, as_of: int) -> None:
    users, events = generate(GeneratorConfig(users=25, days=60, seed=seed))
    config = FeatureConfig()
    batch = snapshots(daily_activity(users, events), users, [as_of], config, with_labels=False)
    start = events["event_time"].min().normalize()
    cutoff = start + np.timedelta64(as_of + 1, "D")
    states: dict[int, UserState] = {}
    for event in events[events["event_time"] < cutoff].sort_values("event_time").to_dict(
            "records"):
        states.setdefault(event["user_id"], UserState()).apply(event, max(config.windows))
    today = day_number(start.to_pydatetime()) + as_of
    by_id = users.set_index("user_id")
    assert len(batch) > 0
    for row in batch.to_dict("records"):
        user = by_id.loc[row["user_id"]]
        online = window_features(states[row["user_id"]], today,
                                 day_number(user["signup_date"].to_pydatetime()),
                                 user.to_dict(), config)
        for name, value in online.items():
            if isinstance(value, str):
                assert value == row[name], name
            else:
                assert value == pytest.approx(row[name], rel=1e-5, abs=1e-4), name


def test_resent_event_counts_once_and_store_resumes(tmp_path: Path) -> None:
    _, events = generate(GeneratorConfig(users=3, days=50))
    first = events.sort_values("event_time").head(20).to_dict("records")
    store = OnlineStore(tmp_path / "state.sqlite")
    for event in first + first[:5]:
        store.apply(event)
    totals = sum(v[0] for s in store.cache.values() for v in s.days.values())
    assert totals == 20  # the re-sent five are applied once
    store.commit("events", {0: 25})
    store.apply(first[-1] | {"event_id": 10**9})  # applied but never committed: a crash
    store.close()
    resumed = OnlineStore(tmp_path / "state.sqlite")
    assert resumed.offsets("events") == {0: 25}
    assert sum(v[0] for u in {e["user_id"] for e in first}
               for v in resumed.state(u).days.values()) == 20
