"""The A/B API: one churn API per variant behind a router that assigns each customer.

Every variant is a complete `churnctl.serving.app` (its own hot-reloading model holder, request
validation, scorer) fed by its registry alias. The router (pure ASGI) reads the customer id
from the request, assigns the variant by salted hash, passes the request on unchanged, and
adds `variant` to the answer (and the `X-Churnctl-Variant` header). /predict/batch is split by
variant and merged back in the request's order. Per-variant Prometheus metrics and the
assignment log are written by the router.
"""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from churnctl.ab.assign import assign, canonical_id
from churnctl.ab.log import AssignmentLog
from churnctl.serving.metrics import LATENCY_BUCKETS, PROBABILITY_BUCKETS

JSON = b"application/json"


class AbMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("churn_ab_requests", "Prediction requests by variant.",
                                ["variant", "handler", "status"], registry=self.registry)
        self.latency = Histogram("churn_ab_request_duration_seconds", "Time to answer.",
                                 ["variant"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("churn_ab_predictions", "Customers scored by variant.",
                                   ["variant", "model_version"], registry=self.registry)
        self.probability = Histogram("churn_ab_prediction_probability",
                                     "Churn probabilities returned, by variant.", ["variant"],
                                     buckets=PROBABILITY_BUCKETS, registry=self.registry)
        self.model_version = Gauge("churn_ab_model_version", "Version a variant serves.",
                                   ["variant"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def call(app: Any, scope: dict[str, Any], method: str, path: str, body: bytes = b""
               ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request to an ASGI app in-process: (status, headers, body)."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
    sub = {**scope, "method": method, "path": path, "raw_path": path.encode(),
           "query_string": b"", "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    sent = False
    answer: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(sub, receive, send)
    return answer["status"], answer["headers"], answer["body"]


async def _read(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
                   | None = None, content_type: bytes = JSON) -> None:
    out = [(k, v) for k, v in (headers or []) if k.lower() not in (b"content-length",
                                                                    b"content-type")]
    out += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def _error(message: str) -> bytes:
    return json.dumps({"message": message, "detail": None}).encode()


class AbRouter:
    def __init__(self, variants: dict[str, Any], weights: dict[str, float], salt: str,
                 log: AssignmentLog, id_column: str = "user_id") -> None:
        self.variants, self.weights, self.salt, self.log = variants, weights, salt, log
        self.id_column = id_column
        self.metrics = AbMetrics()
        self.champion = next(iter(variants))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/metrics" and method == "GET":
            await _respond(send, 200, self.metrics.render(),
                           content_type=CONTENT_TYPE_LATEST.encode())
        elif path in ("/predict", "/predict/batch") and method == "POST":
            start = time.perf_counter()
            body = await _read(receive)
            handler = self._predict if path == "/predict" else self._batch
            await handler(scope, send, body, start)
        elif path == "/ready" and method == "GET":
            await self._ready(scope, send)
        else:  # /live, /model, docs: the champion answers
            await self.variants[self.champion](scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        async with AsyncExitStack() as stack:
            message = await receive()
            if message["type"] != "lifespan.startup":
                return
            for app in self.variants.values():  # each variant's holder starts polling
                await stack.enter_async_context(app.router.lifespan_context(app))
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        self.log.close()
        await send({"type": "lifespan.shutdown.complete"})

    def _customer(self, item: Any) -> Any:
        return item.get(self.id_column) if isinstance(item, dict) else None

    def _observe(self, variant: str, handler: str, status: int, start: float) -> None:
        self.metrics.requests.labels(variant, handler, str(status)).inc()
        self.metrics.latency.labels(variant).observe(time.perf_counter() - start)

    def _scored(self, variant: str, customer: Any, prediction: dict[str, Any]) -> None:
        version = prediction.get("model_version")
        probability = prediction.get("churn_probability")
        self.metrics.predictions.labels(variant, str(version)).inc()
        if isinstance(probability, float):
            self.metrics.probability.labels(variant).observe(probability)
        if isinstance(version, int):
            self.metrics.model_version.labels(variant).set(version)
        self.log.append(canonical_id(customer), variant, version, probability)

    async def _predict(self, scope: dict[str, Any], send: Any, body: bytes, start: float
                       ) -> None:
        try:
            customer = self._customer(json.loads(body))
        except ValueError:
            customer = None
        if customer is None:
            await _respond(send, 422, _error(f"A/B serving assigns a variant by customer id: "
                                             f"send {self.id_column!r} in the request"))
            return
        variant = assign(customer, self.weights, self.salt)
        status, headers, answer = await call(self.variants[variant], scope, "POST", "/predict",
                                             body)
        if status == 200:
            prediction = json.loads(answer)
            prediction["variant"] = variant
            self._scored(variant, customer, prediction)
            answer = json.dumps(prediction).encode()
        self._observe(variant, "/predict", status, start)
        await _respond(send, status, answer, [*headers, (b"x-churnctl-variant",
                                                         variant.encode())])

    async def _batch(self, scope: dict[str, Any], send: Any, body: bytes, start: float
                     ) -> None:
        try:
            customers = json.loads(body).get("customers")
        except (ValueError, AttributeError):
            customers = None
        ids = [self._customer(c) for c in customers] if isinstance(customers, list) else None
        if not ids or any(i is None for i in ids):
            await _respond(send, 422, _error(f"A/B serving assigns a variant by customer id: "
                                             f"every customer needs {self.id_column!r}"))
            return
        groups: dict[str, list[int]] = {}
        for index, customer in enumerate(ids):
            groups.setdefault(assign(customer, self.weights, self.salt), []).append(index)
        merged: list[Any] = [None] * len(ids)
        for variant, indexes in groups.items():
            part = json.dumps({"customers": [customers[i] for i in indexes]}).encode()
            status, headers, answer = await call(self.variants[variant], scope, "POST",
                                                 "/predict/batch", part)
            self._observe(variant, "/predict/batch", status, start)
            if status != 200:
                await _respond(send, status, answer, headers)
                return
            for index, prediction in zip(indexes, json.loads(answer)["predictions"],
                                         strict=True):
                prediction["variant"] = variant
                self._scored(variant, ids[index], prediction)
                merged[index] = prediction
        await _respond(send, 200, json.dumps({"count": len(merged),
                                              "predictions": merged}).encode())

    async def _ready(self, scope: dict[str, Any], send: Any) -> None:
        states, ok = {}, True
        for name, app in self.variants.items():
            status, _, answer = await call(app, scope, "GET", "/ready")
            states[name] = json.loads(answer)
            ok = ok and status == 200
        body = json.dumps({"status": "ready" if ok else "not ready", "variants": states})
        await _respond(send, 200 if ok else 503, body.encode())
