"""OpenTelemetry tracing, off and free unless configured (extra `churnctl[otel]`).

Turned on by `configure()`: an endpoint from the profile's `tracing:` binding or from
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT. Until then `span()` yields a
no-op object and nothing from opentelemetry is imported, so `churnctl --help`, runs and the
API pay nothing. OTLP over HTTP (`http/protobuf`, the default) or gRPC (`grpc`, from the
`protocol` option or OTEL_EXPORTER_OTLP_PROTOCOL); a parent-based ratio sampler. The API's
spans (churnctl.tracing_api) are request spans (churnctl.tracing_request) and `serve` exports
them from a child process (churnctl.tracing_child): both for speed, both checked against the
SDK.
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
    from churnctl.tracing_check import matches_sdk
    from churnctl.tracing_request import RequestTracer

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
