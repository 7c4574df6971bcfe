"""Request and response models of the API, the request side built from a model's features.

Numbers must be finite JSON numbers (no strings, booleans, NaN or infinity), categories must be
strings, every feature is required and unknown fields are rejected: a bad request is a 422 that
names the field, never a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    create_model,
    model_validator,
)

from churnctl.domain.model import FeatureSpec


def _user_id(value: Any) -> str | int:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    # JSON Schema's "integer" includes 10.0 (JSON has one number type): take it as 10.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError("must be a string or an integer")


# One plain check, so a bad id is one error ("user_id: must be ...") rather than one per type.
UserId = Annotated[str | int, PlainValidator(_user_id),
                   WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]})]


def _exactly_one_source(schema: dict[str, Any]) -> None:
    """JSON Schema for "exactly one of features or user_id, not null": oneOf two branches."""
    properties = schema.get("properties", {})
    branches = []
    for name in ("features", "user_id"):
        choices = properties.get(name, {}).get("anyOf", [])
        given = [choice for choice in choices if choice.get("type") != "null"]
        if given:
            one = given[0] if len(given) == 1 else {"anyOf": given}
            branches.append({"required": [name], "properties": {name: one}})
    if len(branches) == 2:
        schema["oneOf"] = branches


class PredictRequestBase(BaseModel):
    """Either `features` (the customer's feature values) or `user_id` (look up their latest
    snapshot in the features artifact), not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_source)

    user_id: UserId | None = Field(
        None, description="Score this user's latest feature snapshot from the features stage.")

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequestBase:
        has_features = getattr(self, "features", None) is not None
        if has_features == (self.user_id is not None):
            raise ValueError("give exactly one of `features` or `user_id`")
        return self


class Prediction(BaseModel):
    user_id: UserId | None = Field(None, description="The request's user_id, if it gave one.")
    churn_probability: float = Field(description="Probability that the customer churns (0-1).")
    churn_predicted: bool = Field(description="churn_probability >= the model's threshold.")
    model_version: int = Field(description="Registry version of the model that scored it.")
    as_of: str | None = Field(None, description="Date of the looked-up snapshot (user_id only).")


class BatchPrediction(BaseModel):
    model_version: int
    count: int
    predictions: list[Prediction]


class FeatureInfo(BaseModel):
    name: str
    kind: str
    categories: list[str] = []


class ModelInfo(BaseModel):
    version: int
    algorithm: str
    metrics: dict[str, float]
    trained_at: str = Field(description="When the version was registered (UTC).")
    loaded_at: str = Field(description="When this server switched to it (UTC).")
    threshold: float
    scorer: str = Field(description="linear | trees | numpy (compiled) or pipeline.")
    feature_schema: list[FeatureInfo]


class ErrorResponse(BaseModel):
    message: str = Field(description="What is wrong, naming the field, id or limit.")
    detail: list[dict[str, Any]] | None = Field(
        None, description="Validation errors as {loc, msg, type} (422 only).")


@dataclass(frozen=True)
class RequestModels:
    """The request models for one feature schema; a server holds one set per loaded model."""

    features: type[BaseModel]
    predict: type[BaseModel]
    batch: type[BaseModel]
    names: tuple[str, ...]

    def record(self, features: BaseModel) -> dict[str, Any]:
        """The validated features as {feature name: value}."""
        return dict(zip(self.names, features.__dict__.values(), strict=True))


def _field(spec: FeatureSpec) -> Any:
    if spec.kind == "numeric":
        return Annotated[float, Field(
            alias=spec.name, strict=True, allow_inf_nan=False,
            description="Numeric feature: a finite JSON number.")]
    known = ", ".join(spec.categories)
    text = "Categorical feature: a string" + (f" (trained on: {known})" if known else "")
    examples = [spec.categories[0]] if spec.categories else None
    return Annotated[str, Field(
        alias=spec.name, strict=True,
        description=text + "; a value the model never saw is scored as unseen.",
        examples=examples)]


def feature_specs(schema: list[dict[str, Any]] | list[FeatureSpec]) -> list[FeatureSpec]:
    return [s if isinstance(s, FeatureSpec) else FeatureSpec(
        s["name"], s["kind"], tuple(s.get("categories") or ())) for s in schema]


def build_request_models(schema: list[dict[str, Any]] | list[FeatureSpec],
                         max_batch: int) -> RequestModels:
    """Pydantic models for /predict and /predict/batch from a model's feature schema."""
    specs = feature_specs(schema)
    # Python names are positional (f0, f1, ...) and the JSON names are aliases, so any column
    # name works, including ones that clash with BaseModel attributes or are not identifiers.
    fields = {f"f{i}": (_field(spec), ...) for i, spec in enumerate(specs)}
    features = create_model(
        "CustomerFeatures", __config__=ConfigDict(extra="forbid", populate_by_name=False),
        __doc__="One customer's feature values, as in the model's feature schema.", **fields)
    predict = create_model(
        "PredictRequest", __base__=PredictRequestBase,
        features=(features | None, Field(None, description="The customer's feature values.")))
    batch = create_model(
        "BatchPredictRequest", __config__=ConfigDict(extra="forbid"),
        __doc__=f"Up to {max_batch} customers, each by features or by user_id.",
        # maxItems in the document only: the API counts the customers itself, before
        # validating any of them, and answers 413 (documented), not pydantic's 422.
        customers=(list[predict], Field(description=f"At most {max_batch} items (else 413).",
                                        json_schema_extra={"maxItems": max_batch})))
    return RequestModels(features, predict, batch, tuple(spec.name for spec in specs))


def error_message(errors: list[dict[str, Any]], limit: int = 5) -> str:
    """One line naming each problem: `features.tenure: Field required; ...`."""
    parts = []
    for error in errors[:limit]:
        where = ".".join(_short(part) for part in error.get("loc", ())) or "body"
        text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {text}")
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def clean_errors(errors: list[dict[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    """Validation errors without echoed input (may be huge or sensitive) or doc URLs."""
    return [{"loc": [part if isinstance(part, int) else _short(part) for part in e.get("loc", ())],
             "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors[:limit]]


def _short(part: Any, limit: int = 100) -> str:
    """A loc part (a client-given field name may be megabytes long), cut to `limit` chars."""
    text = str(part)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
