"""The fast path of /predict/batch gives the validated path's answers and its exact errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churnctl.serving import fast_batch
from churnctl.serving.app import create_app
from churnctl.workspace import Workspace
from tests.serving_demo import make_demo_workspace

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module", params=["logistic", "hgb"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[TestClient, pd.DataFrame]]:
    workspace: Workspace = make_demo_workspace(tmp_path_factory.mktemp(request.param),
                                               users=400, algorithm=request.param)
    app = create_app(workspace, {"max_batch": 500})
    app.state.holder.refresh()
    frame = pd.read_parquet(next(workspace.artifacts.glob("features/*/latest.parquet")))
    yield TestClient(app), frame


def _features(frame: pd.DataFrame, row: int) -> dict[str, Any]:
    record = frame.drop(columns=["user_id", "as_of"]).iloc[row].to_dict()
    return {k: (v if isinstance(v, str) else float(v)) for k, v in record.items()}


def _both(client: TestClient, body: bytes, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[Any, Any, bool]:
    """(fast answer, validated answer, whether the fast path took it)."""
    taken = []
    accept = fast_batch.accept

    def spy(*args: Any) -> Any:
        items = accept(*args)
        taken.append(items is not None)
        return items

    monkeypatch.setattr(fast_batch, "accept", spy)
    fast = client.post("/predict/batch", content=body, headers=JSON)
    monkeypatch.setattr(fast_batch, "accept", lambda *args: None)
    slow = client.post("/predict/batch", content=body, headers=JSON)
    monkeypatch.setattr(fast_batch, "accept", accept)
    return fast, slow, taken == [True]


def test_plain_batches_take_the_fast_path_with_the_same_answers(
        served: tuple[TestClient, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    client, frame = served
    by_features = [{"features": _features(frame, i)} for i in range(300)]
    as_ints = [{"features": {k: (round(v) if isinstance(v, float) else v)
                             for k, v in _features(frame, i).items()}} for i in range(20)]
    by_id = [{"user_id": uid} for uid in frame["user_id"].iloc[:200]]
    mixed = [item for pair in zip(by_features[:50], by_id[:50], strict=True) for item in pair]
    for customers in (by_features, as_ints, by_id, mixed, by_features[:3]):
        body = json.dumps({"customers": customers}).encode()
        fast, slow, taken = _both(client, body, monkeypatch)
        assert taken, customers[:2]
        assert fast.status_code == slow.status_code == 200, fast.text
        got, want = fast.json(), slow.json()
        assert got["count"] == want["count"] == len(customers)
        np.testing.assert_allclose([p.pop("churn_probability") for p in got["predictions"]],
                                   [p.pop("churn_probability") for p in want["predictions"]],
                                   rtol=0, atol=1e-12)
        assert got == want


def _bad_batches(frame: pd.DataFrame) -> list[bytes]:
    good = _features(frame, 0)
    user = frame["user_id"].iloc[0]
    text = json.dumps({"customers": [{"features": good}]})
    number = f'"events_30d": {good["events_30d"]!r}'
    bodies: list[Any] = [
        {"customers": [{"features": good | {"events_30d": "many"}}]},
        {"customers": [{"features": good | {"is_paid": True}}]},
        {"customers": [{"features": good | {"plan": 1}}]},
        {"customers": [{"features": good | {"plan": None}}]},
        {"customers": [{"features": good | {"plan": "platinum"}}]},  # unseen: scored as such
        {"customers": [{"features": {k: v for k, v in good.items() if k != "country"}}]},
        {"customers": [{"features": good | {"age": 3}}]},
        {"customers": [{"features": good, "user_id": user}]},
        {"customers": [{"features": None, "user_id": user}]},
        {"customers": [{"features": good, "user_id": None}]},
        {"customers": [{}]}, {}, {"customers": {}}, {"customers": [1]}, [1, 2], "x",
        {"customers": []},
        {"customers": [{"user_id": 1.5}]}, {"customers": [{"user_id": True}]},
        {"customers": [{"user_id": None}]}, {"customers": [{"user_id": [user]}]},
        {"customers": [{"user_id": "ghost-1"}, {"user_id": user}, {"user_id": "ghost-2"}]},
        {"customers": [{"user_id": "x" * 5000}]},
        {"customers": [{"features": good}], "extra": 1},
        {"customers": [{"features": good}] * 501},
        {"customers": [{"features": good | {"events_30d": 2**60}}]},
    ]
    raw = [json.dumps(body).encode() for body in bodies]
    raw += [text.replace(number, '"events_30d": NaN').encode(),
            text.replace(number, '"events_30d": -Infinity').encode(),
            text.replace(number, '"events_30d": 1e999').encode(),
            text.replace(number, '"events_30d": 123456789012345678901234567890').encode(),
            b'{"customers": [{"user_id": 123456789012345678901234567890}]}',
            b'{"customers": [{"user_id": "\\ud800"}]}', b'{"customers": [}', b"", b"nul"]
    return raw


def test_bad_batches_get_the_validated_paths_exact_answer(
        served: tuple[TestClient, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    client, frame = served
    for body in _bad_batches(frame):
        fast, slow, _ = _both(client, body, monkeypatch)
        assert fast.status_code == slow.status_code, (body[:200], fast.text, slow.text)
        if fast.status_code == 200:
            got, want = fast.json(), slow.json()
            np.testing.assert_allclose(
                [p.pop("churn_probability") for p in got["predictions"]],
                [p.pop("churn_probability") for p in want["predictions"]], atol=1e-12)
            assert got == want
        else:
            assert fast.content == slow.content, body[:200]


def test_a_batch_of_probabilities_fills_the_histogram_as_one_by_one_does() -> None:
    from churnctl.serving.metrics import ServingMetrics

    values = [*np.random.default_rng(3).random(1000).tolist(), 0.0, 0.1, 0.2, 0.7, 1.0]
    bulk, single = ServingMetrics(), ServingMetrics()
    bulk.observe_predictions(1, values)
    for value in values:
        single.probability.observe(value)

    def buckets(metrics: ServingMetrics) -> dict[str, float]:
        (family,) = [m for m in metrics.registry.collect()
                     if m.name == "churn_prediction_probability"]
        return {s.name + str(s.labels): s.value for s in family.samples
                if not s.name.endswith("_created")}

    got, want = buckets(bulk), buckets(single)
    total = "churn_prediction_probability_sum{}"
    assert got.pop(total) == pytest.approx(want.pop(total), rel=1e-12)
    assert got == want
