"""OpenTelemetry tracing, off and free unless configured (extra `churnctl[otel]`).

Turned on by `configure()`: an endpoint from the profile's `tracing:` binding or from
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT. Until then `span()` yields a
no-op object and nothing from opentelemetry is imported, so `churnctl --help`, runs and the
API pay nothing. OTLP over HTTP (`http/protobuf`, the default) or gRPC (`grpc`, from the
`protocol` option or OTEL_EXPORTER_OTLP_PROTOCOL); a parent-based ratio sampler. The API's
spans are request spans (churnctl.tracing_request) and `serve` exports them from a child
process (churnctl.tracing_child): both for speed, both checked against the SDK.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from churnctl.errors import UserError

log = logging.getLogger(__name__)

SKIPPED_ROUTES = "live,ready,metrics"  # health and metrics: no spans
KNOWN_REQUESTS = 1024  # ServerSpans' attribute and name caches, cleared when full
_UNTRACED_PATHS = frozenset(f"/{route}{end}" for route in SKIPPED_ROUTES.split(",")
                            for end in ("", "/"))
RATIO_ENV = "CHURNCTL_TRACE_SAMPLE_RATIO"
PROTOCOLS = ("http/protobuf", "http", "grpc")
SDK_SPANS_ENV = "CHURNCTL_TRACE_SDK_SPANS"  # "1": the API's spans from the SDK's Tracer too
_state: dict[str, Any] = {"tracer": None, "provider": None, "requests": None, "parts": None}


class _NoopSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass


NOOP = _NoopSpan()


def enabled() -> bool:
    return _state["tracer"] is not None


def _endpoint() -> str | None:
    return (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None)


def _exporter(endpoint: str, protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        target = endpoint.removeprefix("http://").removeprefix("https://")
        return OTLPSpanExporter(endpoint=target, insecure=not endpoint.startswith("https://"))
    from churnctl.tracing_otlp import FastOTLPSpanExporter  # the library's, faster encoding

    url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else (
        endpoint.rstrip("/") + "/v1/traces")
    return FastOTLPSpanExporter(endpoint=url)


def configure(endpoint: str | None = None, protocol: str | None = None,
              sample_ratio: float | None = None, service: str = "churnctl",
              exporter: Any = None, export_in_child: bool = False) -> bool:
    """Turn tracing on when an endpoint (or a test's exporter) is given; True when on.

    `export_in_child`: OTLP encoding and posting done by a child process (the API's choice,
    churnctl.tracing_child says why). Idempotent: the first successful call wins for the life
    of the process.
    """
    if enabled():
        return True
    endpoint = endpoint or _endpoint()
    if endpoint is None and exporter is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
    except ImportError:
        raise UserError("tracing is configured but OpenTelemetry is not installed: "
                        "pip install 'churnctl[otel]'") from None
    ratio = sample_ratio if sample_ratio is not None else _env_ratio()
    ratio = 1.0 if ratio is None else ratio
    if not 0.0 <= ratio <= 1.0:
        raise UserError(f"tracing sample_ratio {ratio}: use a number from 0 to 1")
    protocol = protocol or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol not in PROTOCOLS:
        raise UserError(f"tracing protocol {protocol!r}: use http/protobuf or grpc")
    limits = SpanLimits()  # from the OTEL_*_LIMIT variables
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)}),
        sampler=ParentBased(ALWAYS_ON if ratio == 1.0 else TraceIdRatioBased(ratio)),
        span_limits=limits)
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    else:
        from churnctl.tracing_child import ChildSpanExporter

        processor = BatchSpanProcessor(ChildSpanExporter(endpoint, protocol) if export_in_child
                                       else _exporter(endpoint, protocol), **_batch_settings())
    provider.add_span_processor(processor)
    _state.update(provider=provider, tracer=provider.get_tracer("churnctl"),
                  parts=(processor, limits, ratio == 1.0))
    atexit.register(shutdown)
    return True


def request_tracer() -> Any:
    """The API's tracer (None while tracing is off): request spans where they encode
    exactly as the SDK's, else the SDK's own Tracer (churnctl.tracing_request says why).
    Made on first use: a pipeline run never pays the check."""
    if _state["requests"] is None and _state["provider"] is not None:
        _state["requests"] = _request_tracer(_state["provider"], *_state["parts"])
    return _state["requests"]


def _request_tracer(provider: Any, processor: Any, limits: Any, always_on: bool) -> Any:
    from churnctl.tracing_request import RequestTracer, matches_sdk

    name = "churnctl.serving"
    if os.environ.get(SDK_SPANS_ENV, "").strip() == "1":
        return provider.get_tracer(name)
    # configure() made the sampler: ParentBased with its default delegates, ALWAYS_ON roots
    # at ratio 1.0.
    if not matches_sdk(provider.resource, provider.sampler, limits, True, always_on):
        log.warning("request spans do not encode as the OpenTelemetry SDK's own; the API "
                    "traces with the SDK's Tracer")
        return provider.get_tracer(name)
    return RequestTracer(provider, processor, limits, name, True, always_on)


def _batch_settings() -> dict[str, int]:
    """Smaller, more frequent exports than the SDK's 512 spans every 5 s, unless the standard
    OTEL_BSP_* variables say otherwise: the batch processor's thread holds the GIL while it
    encodes a batch, and at a sample ratio of 0.1 a 5-second batch stalled the event loop for
    tens of milliseconds (p99 47-86 ms against 4.5-5 ms at 200 ms; bench/bench_tracing.py)."""
    wanted = {"OTEL_BSP_SCHEDULE_DELAY": ("schedule_delay_millis", 500),
              "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("max_export_batch_size", 256)}
    return {arg: value for env, (arg, value) in wanted.items() if env not in os.environ}


def _env_ratio() -> float | None:
    raw = os.environ.get(RATIO_ENV, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise UserError(f"{RATIO_ENV}={raw!r}: use a number from 0 to 1") from None


def configure_from(binding: Any, export_in_child: bool = False) -> bool:
    """configure() from a profile's `tracing:` binding (backend otlp), else from the env.

    CHURNCTL_TRACE_SAMPLE_RATIO beats the profile's sample_ratio (env over project config, as
    for every CHURNCTL_* setting): a deployment's ConfigMap samples less than the profile.
    """
    options = dict(getattr(binding, "options", None) or {}) if binding is not None else {}
    if binding is not None and getattr(binding, "backend", "otlp") not in ("otlp", "none"):
        raise UserError(f"tracing backend {binding.backend!r}: use otlp")
    if binding is not None and binding.backend == "none":
        return False
    ratio = _env_ratio()
    return configure(options.get("endpoint"), options.get("protocol"),
                     options.get("sample_ratio") if ratio is None else ratio,
                     options.get("service", "churnctl"), export_in_child=export_in_child)


def shutdown() -> None:
    """Flush and stop; tracing is off afterwards (a later configure() may turn it on again)."""
    provider = _state["provider"]
    _state.update(provider=None, tracer=None, requests=None, parts=None)
    if provider is not None:
        provider.shutdown()


def _clean(attributes: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items()
            if isinstance(v, str | bool | int | float)}


@contextmanager
def span(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
    """A current span named `name` (its exception recorded), or NOOP when tracing is off."""
    tracer = _state["tracer"]
    if tracer is None:
        yield NOOP
        return
    with tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def stage_done(current: Any, row: dict[str, Any]) -> None:
    """A stage span's attributes from its run-record row: cache status, seconds, row counts."""
    if current is NOOP:
        return
    attributes = {"churnctl.cache": "hit" if row.get("status") == "cached" else "miss",
                  "churnctl.status": row.get("status", ""),
                  "churnctl.seconds": float(row.get("seconds") or 0.0)}
    for key, value in (row.get("summary") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[f"churnctl.summary.{key}"] = value
    current.set_attributes(attributes)


def fastapi_telemetry() -> dict[str, Any]:
    """`FastAPI(telemetry=...)`: FastAPI's native telemetry always off; `ServerSpans` makes
    the server span. A global provider set by some library must not switch it on."""
    return {"tracing": False, "metrics": False, "logs": False}


_SENSITIVE_QUERY = frozenset({"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
                              "sig", "X-Goog-Signature"})  # semconv: redacted in url.query


class ServerSpans:
    """ASGI middleware: one SERVER span per HTTP request, named `METHOD /route`, continuing
    the request's W3C trace context (whatever the global propagator reads); health and
    metrics routes untraced. Installed outermost by the API when tracing is on.

    Rather than FastAPI's native telemetry, which builds every attribute, parses the Host
    header and wraps send/receive for each request before and whatever the sampler decides
    (it measured ~150 µs per unsampled request here). Here the request's attributes are
    worked out once per request line and Host and given at the start (where samplers see
    them, as semconv asks); an unsampled request gets a non-recording span made current (so
    the spans under it are dropped too) and nothing else. Attributes are the stable HTTP
    server ones FastAPI sets.
    """

    def __init__(self, app: Any) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, StatusCode

        from churnctl.tracing_request import plain_attributes

        self._plain = plain_attributes
        self.app = app
        self._tracer = request_tracer()
        self._propagate, self._in_context = propagate, trace.set_span_in_context
        self._attach, self._detach = context.attach, context.detach
        self._server, self._error = SpanKind.SERVER, StatusCode.ERROR
        self._fields = {f.lower().encode("latin-1") for f in propagate.get_global_textmap().fields}
        self._known: dict[tuple[Any, ...], dict[str, Any]] = {}  # see _attributes
        self._ends: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # see _ended

    def _parent(self, scope: Any) -> Any:
        # Most requests carry no trace headers: skip the propagator's parsing for them.
        found = {name.decode("latin-1"): value.decode("latin-1")
                 for name, value in scope.get("headers") or () if name in self._fields}
        return self._propagate.extract(found) if found else None

    def _attributes(self, scope: Any, method: str) -> dict[str, Any]:
        """`_request_attributes`, worked out once per distinct request line and Host: most
        requests repeat a few (`POST /predict` to one host). Not to be changed: shared."""
        host = next((v for k, v in scope.get("headers") or () if k == b"host"), None)
        key = (scope.get("scheme"), method, scope["path"], scope.get("http_version"), host,
               scope.get("query_string"), tuple(scope.get("server") or ()))
        found = self._known.get(key)
        if found is None:
            if len(self._known) >= KNOWN_REQUESTS:
                self._known.clear()
            found = self._known[key] = self._plain(_request_attributes(scope, method))
        return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        parent = self._parent(scope)
        method = scope.get("method", "HTTP")
        # The request's attributes at the start, where samplers see them (semconv).
        current = self._tracer.start_span(method, context=parent, kind=self._server,
                                          attributes=self._attributes(scope, method))
        token = self._attach(self._in_context(current, parent))
        if not current.is_recording():  # not sampled: no wrapped send
            try:
                await self.app(scope, receive, send)
            finally:
                self._detach(token)
            return
        status = 0

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        error = ""
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            current.record_exception(exc)
            error = type(exc).__qualname__
            raise
        finally:
            self._detach(token)
            self._ended(current, method, getattr(scope.get("route"), "path_format", None),
                        status, error)

    def _ended(self, current: Any, method: str, route: str | None, status: int,
               error: str) -> None:
        key = (method, route, status, error)
        found = self._ends.get(key)
        if found is None:  # a few per route: worked out once
            if len(self._ends) >= KNOWN_REQUESTS:  # methods are the client's to choose
                self._ends.clear()
            found = self._ends[key] = _response_attributes(self._plain, *key)
        name, attributes, failed = found
        if name:
            current.update_name(name)
        if failed:
            current.set_status(self._error)
        current.set_attributes(attributes)  # one call: the SDK locks and cleans per call
        current.end()


def _response_attributes(plain: Any, method: str, route: str | None, status: int,
                         error: str) -> tuple[str | None, dict[str, Any], bool]:
    """The server span's name, its attributes known once the response started, and whether
    it failed (semconv: a 5xx, an exception or no response at all)."""
    found: dict[str, Any] = {}
    if route:
        found["http.route"] = route
    if status:
        found["http.response.status_code"] = status
    failed = bool(error or not status or status >= 500)
    if failed:
        found["error.type"] = error or str(status or "incomplete")
    return (f"{method} {route}" if route else None), plain(found), failed


def _request_attributes(scope: Any, method: str) -> dict[str, Any]:
    """The stable HTTP server span attributes known before the response (semconv)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    attributes: dict[str, Any] = {"url.scheme": scope.get("scheme", "http"),
                                  "http.request.method": method, "url.path": scope["path"]}
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    host = next((v.decode("latin-1") for k, v in scope.get("headers") or () if k == b"host"),
                None)
    address, port = scope.get("server") or (None, None)
    if host is not None:
        try:
            url = urlsplit("//" + host)
            address, port = url.hostname, url.port or {"https": 443}.get(scope.get("scheme"), 80)
        except ValueError:  # a malformed Host header must not fail the request
            address = None
    if address:
        attributes["server.address"] = address
        if port:
            attributes["server.port"] = port
    if scope.get("query_string"):
        attributes["url.query"] = urlencode(
            [(k, "REDACTED" if k in _SENSITIVE_QUERY else v) for k, v in parse_qsl(
                scope["query_string"].decode("latin-1"), keep_blank_values=True)])
    return attributes


def traced_score(score: Any, feature_source: str = "") -> Any:
    """Wrap the API's async `score(snapshot, records, frame=None)` in a span (when tracing is
    on; otherwise `score` itself, untouched) with the model version, scorer and rows."""
    tracer = request_tracer()
    if tracer is None:
        return score
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from churnctl.tracing_request import RequestSpan, plain_attributes

    source = feature_source or "request"
    last: list[Any] = [(None, -1), {}]  # the last (snapshot, rows) and their span attributes
    lean = getattr(tracer, "start_child", None)  # request spans (churnctl.tracing_request)

    def attributes(snapshot: Any, rows: int) -> dict[str, Any]:
        # Requests repeat them until the model is swapped: worked out once (not to be
        # changed: the span copies them).
        if last[0][0] is not snapshot or last[0][1] != rows:
            last[:] = [(snapshot, rows), plain_attributes({
                "churnctl.model_version": snapshot.version,
                "churnctl.scorer": str(getattr(snapshot.scorer, "kind", "")),
                "churnctl.variant": str(getattr(snapshot, "variant", "") or "default"),
                "churnctl.feature_source": source, "churnctl.rows": rows})]
        return last[1]

    def started(snapshot: Any, records: list[Any], frame: Any) -> Any:
        # A leaf span (nothing starts under it): started and ended without making it the
        # current context, which saves a context attach/detach per request; its attributes
        # are built only once the sampler has kept it.
        parent = trace.get_current_span()
        rows = len(frame) if frame is not None else len(records)
        if lean is not None and type(parent) is RequestSpan:  # the server span, most often
            return lean(parent, "churnctl score", attributes(snapshot, rows))
        context = parent.get_span_context()
        if context.is_valid and not context.trace_flags.sampled:
            return None  # the parent-based sampler would drop it
        current = tracer.start_span("churnctl score", kind=SpanKind.INTERNAL)
        if current.is_recording():
            current.set_attributes(attributes(snapshot, rows))
        return current

    async def scored(snapshot: Any, records: list[Any], frame: Any = None) -> Any:
        current = started(snapshot, records, frame)
        if current is None:
            return await (score(snapshot, records) if frame is None
                          else score(snapshot, records, frame))
        try:
            if frame is None:  # the frame argument is newer than some callers
                return await score(snapshot, records)
            return await score(snapshot, records, frame)
        except BaseException as exc:
            current.record_exception(exc)
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            current.end()

    return scored
