"""Request models built from a feature schema: strict, named errors, any column name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from churnctl.domain.model import FeatureSpec
from churnctl.serving.schema import build_request_models, error_message

SCHEMA = [
    FeatureSpec("tenure_days", "numeric"),
    FeatureSpec("model_config", "numeric"),  # clashes with a BaseModel attribute
    FeatureSpec("1st payment", "numeric"),  # not a Python identifier
    FeatureSpec("plan", "categorical", ("free", "paid")),
]
GOOD = {"tenure_days": 10, "model_config": 0.5, "1st payment": 9.99, "plan": "paid"}


def _errors(body: Any) -> list[dict[str, Any]]:
    models = build_request_models(SCHEMA, max_batch=10)
    raw = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(ValidationError) as caught:
        models.predict.model_validate_json(raw)
    return caught.value.errors(include_url=False)


def test_valid_features_become_a_record_in_schema_order() -> None:
    models = build_request_models(SCHEMA, max_batch=10)
    parsed = models.predict.model_validate_json(json.dumps({"features": GOOD}))
    assert models.record(parsed.features) == {
        "tenure_days": 10.0, "model_config": 0.5, "1st payment": 9.99, "plan": "paid"}
    assert models.predict.model_validate_json('{"user_id": 42}').user_id == 42


@pytest.mark.parametrize(("body", "where", "says"), [
    ({"features": {k: v for k, v in GOOD.items() if k != "plan"}}, "features.plan",
     "Field required"),
    ({"features": GOOD | {"tenure_days": "10"}}, "features.tenure_days", "valid number"),
    ({"features": GOOD | {"tenure_days": True}}, "features.tenure_days", "valid number"),
    ({"features": GOOD | {"plan": 1}}, "features.plan", "valid string"),
    ({"features": GOOD | {"extra": 1}}, "features.extra", "Extra inputs are not permitted"),
    ('{"features": {"tenure_days": NaN, "model_config": 1, "1st payment": 1, "plan": "x"}}',
     "features.tenure_days", "finite number"),
    ('{"features": {"tenure_days": 1, "model_config": -Infinity, "1st payment": 1, '
     '"plan": "x"}}', "features.model_config", "finite number"),
    ('{"features": {"tenure_days": 1, "model_config": 1, "1st payment": 1e999, "plan": "x"}}',
     "features.1st payment", "finite number"),
    ({}, "body", "exactly one of `features` or `user_id`"),
    ({"user_id": "u1", "features": GOOD}, "body", "exactly one"),
    ({"user_id": 1.5}, "user_id", "must be a string or an integer"),
    ({"user_id": None}, "body", "exactly one"),
    ({"customer": "u1"}, "customer", "Extra inputs are not permitted"),
])
def test_bad_requests_name_the_field(body: Any, where: str, says: str) -> None:
    message = error_message(_errors(body))
    assert message.startswith(where + ":") or f"; {where}:" in message, message
    assert says in message


def test_batch_model_and_openapi_schema() -> None:
    models = build_request_models(SCHEMA, max_batch=10)
    batch = models.batch.model_validate_json(json.dumps(
        {"customers": [{"features": GOOD}, {"user_id": "u7"}]}))
    assert [item.user_id for item in batch.customers] == [None, "u7"]
    schema = models.predict.model_json_schema()
    features = schema["$defs"]["CustomerFeatures"]
    assert set(features["required"]) == {s.name for s in SCHEMA}
    assert features["additionalProperties"] is False
    assert features["properties"]["plan"]["type"] == "string"
    assert features["properties"]["1st payment"]["type"] == "number"
