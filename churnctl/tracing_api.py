"""The API's spans: one SERVER span per HTTP request (`ServerSpans`, ASGI middleware) and one
around scoring (`traced_score`), from churnctl.tracing's request tracer. Nothing here imports
opentelemetry until tracing is on (churnctl.tracing says how it turns on)."""

from __future__ import annotations

from typing import Any

from churnctl.tracing import request_tracer

SKIPPED_ROUTES = "live,ready,metrics"  # health and metrics: no spans
KNOWN_REQUESTS = 1024  # ServerSpans' attribute and response caches, cleared when full
_UNTRACED_PATHS = frozenset(f"/{route}{end}" for route in SKIPPED_ROUTES.split(",")
                            for end in ("", "/"))


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
