"""The churn API: `create_app(workspace, options)` builds it; no model is loaded at import.

Request bodies are validated by hand against the *current* model's request models, not by
FastAPI's signature-bound ones, because the schema follows the production model through hot
reloads: one request reads the snapshot once and is validated and scored by that one version.
OpenAPI is regenerated from the served model's schema after each switch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pydantic_core
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError

from churnctl import __version__, tracing, tracing_api
from churnctl.serving import fast_batch
from churnctl.serving.direct_route import DirectRoute
from churnctl.serving.docs_ui import mount_docs
from churnctl.serving.layout import UnknownCategory
from churnctl.serving.lookup import LookupRefused
from churnctl.serving.metrics import MetricsMiddleware, ServingMetrics
from churnctl.serving.model_holder import ModelHolder, Snapshot
from churnctl.serving.openapi import build_openapi
from churnctl.serving.options import ServeOptions
from churnctl.serving.schema import (
    BatchPrediction,
    ErrorResponse,
    ModelInfo,
    Prediction,
    clean_errors,
    error_message,
)
from churnctl.serving.security import TokenAuth, is_json, load_token, public_reason, shorten
from churnctl.serving.sources import model_registry_for
from churnctl.workspace import Workspace

JSON = "application/json"
INLINE_ROWS = 16  # more rows than this are scored in a worker thread, off the event loop
DESCRIPTION = """Churn probability for one customer (`POST /predict`) or many
(`POST /predict/batch`), by feature values or by `user_id` (latest snapshot from the features
stage). Request schemas follow the production model's feature schema and change with it."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def _errors(status: int, *extra: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Malformed JSON", 404: "Unknown user_id", 413: "Body or batch too large",
            415: "Content-Type is not application/json",
            422: "Invalid field (named in the message)", 503: "No model loaded yet"}
    return {code: {"model": ErrorResponse, "description": text[code]} for code in (status, *extra)}


_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json(data: Any, status: int = 200) -> Response:
    # orjson: a twentieth of json.dumps' time per answer; the fast batch path's bytes too.
    return Response(orjson.dumps(data, option=_ORJSON), status_code=status, media_type=JSON)


async def read_body(request: Request, limit: int) -> bytes:
    """The JSON body, or 415 for another Content-Type, or 413 as soon as it is known to exceed
    `limit` bytes."""
    content_type = declared = None
    for name, value in request.scope["headers"]:  # the raw list: no Headers object per request
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            declared = value
    if not is_json(content_type):
        raise ApiError(415, "Content-Type must be application/json")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {int(declared)} bytes; the limit is {limit} bytes "
                            "(option max_body_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes "
                                "(option max_body_bytes)")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _invalid(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return ApiError(400, f"malformed JSON: {errors[0]['msg']}")
    return ApiError(422, error_message(errors), clean_errors(errors))


class _Api:
    """The request handlers, sharing one holder, metrics and options."""

    def __init__(self, holder: ModelHolder, metrics: ServingMetrics, options: ServeOptions):
        self.holder = holder
        self.metrics = metrics
        self.options = options

    def snapshot(self) -> Snapshot:
        snapshot = self.holder.current
        if snapshot is None:
            reason = public_reason(self.holder.not_ready_reason())
            raise ApiError(503, f"no model loaded: {reason}")
        return snapshot

    def record_for(self, snapshot: Snapshot, item: BaseModel, unknown: list[Any]
                   ) -> tuple[dict[str, Any] | None, str | None]:
        features = item.features  # type: ignore[attr-defined]
        if features is not None:
            return snapshot.requests.record(features), None
        table = self.holder.features
        if table is None:
            raise ApiError(503, "user_id look-ups unavailable: "
                                f"{public_reason(self.holder.features_error)}")
        missing = table.missing_columns(snapshot.requests.names)
        if missing:
            raise ApiError(503, f"the features snapshot lacks columns model v{snapshot.version} "
                                f"needs: {', '.join(missing[:10])}")
        try:
            found = table.get(item.user_id, snapshot.requests.names)  # type: ignore[attr-defined]
        except LookupRefused as exc:  # a stale online row (409), the online store down (503)
            raise ApiError(exc.status, str(exc)) from exc
        if found is None:
            unknown.append(item.user_id)  # type: ignore[attr-defined]
            return None, None
        return found

    async def score(self, snapshot: Snapshot, records: list[dict[str, Any]],
                    frame: Any = None) -> list[float]:
        work, rows = ((snapshot.scorer.score_records, records) if frame is None
                      else (snapshot.scorer.score_frame, frame))
        try:
            if len(rows) > INLINE_ROWS or snapshot.scorer.kind == "pipeline":
                scores = await run_in_threadpool(work, rows)
            else:
                scores = work(rows)
        except UnknownCategory as exc:
            raise ApiError(422, str(exc), [{"loc": ["features", exc.feature], "msg": str(exc),
                                            "type": "unknown_category"}]) from exc
        values = [float(value) for value in scores.tolist()]
        if not all(math.isfinite(value) for value in values):
            raise ApiError(422, "the model cannot score missing values in this user's snapshot")
        self.metrics.observe_predictions(snapshot.version, values)
        return values

    def prediction(self, snapshot: Snapshot, item: Any, probability: float,
                   as_of: str | None) -> dict[str, Any]:
        row = {"user_id": item.user_id, "churn_probability": probability,
               "churn_predicted": probability >= snapshot.model.threshold,
               "model_version": snapshot.version, "as_of": as_of}
        if getattr(as_of, "stale", False):  # an online row past its TTL (features option)
            row["stale"] = True
        return row

    async def predict(self, request: Request) -> Response:
        snapshot = self.snapshot()
        body = await read_body(request, self.options.max_body_bytes)
        try:
            item = snapshot.requests.predict.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        unknown: list[Any] = []
        record, as_of = self.record_for(snapshot, item, unknown)
        if record is None:
            raise ApiError(404, f"unknown user_id {shorten(repr(unknown[0]))}: not in the "
                                "latest features snapshot")
        (probability,) = await self.score(snapshot, [record])
        return _json(self.prediction(snapshot, item, probability, as_of))

    async def fast_batch(self, snapshot: Snapshot, body: bytes) -> Response | None:
        """The answer by the fast path (fast_batch.py), or None: the validated path answers."""
        batch = fast_batch.accept(body, snapshot.requests, self.options.max_batch)
        built = batch and fast_batch.feature_frame(batch, snapshot.requests.names,
                                                   self.holder.features)
        if not built:
            return None
        frame, dates = built
        try:
            scores = await self.score(snapshot, [], frame)
        except ValueError:  # looked-up values the frame path cannot take: the record path can
            return None
        except ApiError as exc:
            if exc.status == 422:  # an unknown category: the validated path names it
                return None
            raise
        items = batch.items if batch else []
        return Response(fast_batch.answer(items, scores, dates, snapshot.version,
                                          snapshot.model.threshold), media_type=JSON)

    async def predict_batch(self, request: Request) -> Response:
        snapshot = self.snapshot()
        body = await read_body(request, self.options.max_body_bytes)
        fast = await self.fast_batch(snapshot, body)
        if fast is not None:
            return fast
        try:
            data = pydantic_core.from_json(body)
        except ValueError as exc:
            raise ApiError(400, f"malformed JSON: {exc}") from exc
        items = data.get("customers") if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > self.options.max_batch:
            raise ApiError(413, f"batch has {len(items)} customers; the limit is "
                                f"{self.options.max_batch} (option max_batch)")
        try:
            batch = snapshot.requests.batch.model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        unknown: list[Any] = []
        found = [self.record_for(snapshot, item, unknown) for item in batch.customers]
        if unknown:
            shown = ", ".join(shorten(repr(uid)) for uid in unknown[:10])
            raise ApiError(404, f"unknown user_id {shown}" + (
                f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                + ": not in the latest features snapshot")
        scores = await self.score(snapshot, [record for record, _ in found])
        rows = [self.prediction(snapshot, item, p, as_of)
                for item, p, (_, as_of) in zip(batch.customers, scores, found, strict=True)]
        return _json({"model_version": snapshot.version, "count": len(rows), "predictions": rows})

    def model_info(self) -> Response:
        snapshot = self.snapshot()
        entry = snapshot.entry
        return _json({
            "version": entry.version, "algorithm": entry.algorithm, "metrics": entry.metrics,
            "trained_at": entry.created_at, "loaded_at": snapshot.loaded_at,
            "threshold": snapshot.model.threshold, "scorer": snapshot.scorer.kind,
            "feature_schema": snapshot.model.schema})

    async def ready(self) -> Response:
        snapshot = self.holder.current
        if snapshot is None:
            return _json({"status": "not ready",
                          "reason": public_reason(self.holder.not_ready_reason())}, 503)
        # A source that can be down (the Feast online store on Redis) is asked on each probe:
        # a pod whose user_id look-ups would all fail is taken out of rotation.
        check = getattr(self.holder.features, "check", None)
        if check is not None:
            try:
                await run_in_threadpool(check)
            except LookupRefused as exc:
                return _json({"status": "not ready", "reason": public_reason(str(exc))}, 503)
        return _json({"status": "ready", "model_version": snapshot.version})


def create_app(workspace: Workspace, options: ServeOptions | Mapping[str, Any] | None = None,
               registry: Any = None) -> FastAPI:
    """The API for `workspace`'s registry; the model loads in the background once it starts.

    `registry`: where the model comes from instead of the options' source (an A/B variant's
    alias, churnctl.ab.aliases)."""
    opts = options if isinstance(options, ServeOptions) else ServeOptions.model_validate(
        dict(options or {}))
    metrics = ServingMetrics(workspace)
    holder = ModelHolder(workspace, opts.max_batch, on_error=lambda _: metrics.reload_failed(),
                         cache_users=opts.online_cache_users,
                         registry=registry if registry is not None
                         else model_registry_for(workspace, opts))
    api = _Api(holder, metrics, opts)
    token = load_token(opts.api_token_file)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        holder.start(opts.reload_interval_seconds)
        yield
        await run_in_threadpool(holder.stop)

    if tracing.configure(export_in_child=True):  # OTEL_EXPORTER_OTLP_ENDPOINT, or `serve` did
        api.score = tracing_api.traced_score(api.score)  # type: ignore[method-assign]
    app = FastAPI(title="churnctl churn API", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  telemetry=tracing_api.fastapi_telemetry())  # type: ignore[arg-type]
    app.state.holder, app.state.metrics, app.state.options = holder, metrics, opts

    def swapped(snapshot: Snapshot) -> None:
        metrics.model_swapped(snapshot.version)
        app.openapi_schema = None  # regenerate docs from the new model's schema

    holder.on_swap = swapped
    if token is not None:
        app.add_middleware(TokenAuth, token=token, protect_metrics=opts.protect_metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if tracing.enabled():  # outermost: the server span covers auth and metrics too
        app.add_middleware(tracing_api.ServerSpans)
    protected = () if token is None else (
        "/predict", "/predict/batch", "/model") + (("/metrics",) if opts.protect_metrics else ())
    app.openapi = lambda: build_openapi(  # type: ignore[method-assign]
        app, holder, opts.max_batch, protected)
    mount_docs(app)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"message": exc.message, "detail": exc.detail}, exc.status)

    # The scoring routes validate bodies themselves (module docstring): DirectRoute skips
    # FastAPI's per-request handler, which cost more than scoring one customer.
    app.router.add_api_route(
        "/predict", api.predict, methods=["POST"], name="predict",
        summary="Churn probability of one customer", route_class_override=DirectRoute,
        responses={200: {"model": Prediction}, **_errors(400, 404, 413, 415, 422, 503)})
    app.router.add_api_route(
        "/predict/batch", api.predict_batch, methods=["POST"], name="predict_batch",
        summary="Churn probabilities of many customers", route_class_override=DirectRoute,
        responses={200: {"model": BatchPrediction}, **_errors(400, 404, 413, 415, 422, 503)})

    @app.get("/live", summary="The process answers (no model needed)")
    async def live() -> Response:
        return Response(b'{"status":"alive"}', media_type=JSON)

    @app.get("/ready", summary="200 once a model is loaded (and the online feature store "
             "answers, in v3), else 503 with the reason",
             responses=_errors(503))
    async def ready() -> Response:
        return await api.ready()

    @app.get("/model", summary="The served model: version, metrics, feature schema",
             responses={200: {"model": ModelInfo}, **_errors(503)})
    async def model() -> Response:
        return api.model_info()

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)",
             response_class=PlainTextResponse)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
