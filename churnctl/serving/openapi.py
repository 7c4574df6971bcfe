"""The OpenAPI document, rebuilt from the served (or production) model's request schemas."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from churnctl.serving.model_holder import ModelHolder
from churnctl.serving.schema import RequestModels, build_request_models

JSON = "application/json"


def _request_models(holder: ModelHolder, max_batch: int) -> RequestModels | None:
    snapshot = holder.current
    if snapshot is not None:
        return snapshot.requests
    try:  # not loaded yet: the registry's production entry carries the same schema
        entry = holder.registry.production()
    except (OSError, ValueError, KeyError):
        return None
    if entry is None or not entry.feature_schema:
        return None
    return build_request_models(entry.feature_schema, max_batch)


def build_openapi(app: FastAPI, holder: ModelHolder, max_batch: int,
                  protected: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document; `protected` paths are marked as needing the bearer token."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    models = _request_models(holder, max_batch)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, model in (("/predict", models and models.predict),
                        ("/predict/batch", models and models.batch)):
        if model is None:
            body: dict[str, Any] = {"type": "object", "description": (
                "Built from the production model's feature schema; no model is in the "
                "registry yet.")}
        else:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
            body = {"$ref": f"#/components/schemas/{model.__name__}"}
        schema["paths"][path]["post"]["requestBody"] = {
            "required": True, "content": {JSON: {"schema": body}}}
    if protected:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path in protected:
            for operation in schema["paths"].get(path, {}).values():
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = {
                    "description": "Missing or wrong bearer token",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    app.openapi_schema = schema
    return schema
