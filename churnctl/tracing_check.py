"""The start-up check of request spans (churnctl.tracing_request) against the SDK's own.

`matches_sdk` runs one scenario (a remote parent, attributes set at start, later, twice and
past the limit, a renamed span, a child, an exception event, an error status) through both
and compares the library's OTLP encoding of what each exported, and their span contexts:
`tracing.request_tracer` uses request spans only where they are the same.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags

from churnctl.tracing_request import RequestTracer, plain_attributes


class _NumberedIds(IdGenerator):
    """Ids 1, 2, 3...: both sides of the comparison number their spans alike."""

    def __init__(self) -> None:
        self._next = 0

    def _take(self) -> int:
        self._next += 1
        return self._next

    def generate_span_id(self) -> int:
        return self._take()

    def generate_trace_id(self) -> int:
        return self._take() << 64 | 0xABC  # low bits set: sampled at any ratio above 0

    def is_trace_id_random(self) -> bool:
        return True


def _scenario(tracer: trace_api.Tracer) -> None:
    """What the API does with its spans, and what another library could do to them."""
    remote = trace_api.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331,
                                   is_remote=True, trace_flags=TraceFlags(
                                       TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID))
    parent = trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote))
    server = tracer.start_span("POST", parent, SpanKind.SERVER,
                               plain_attributes({"a.start": "x", "n": 1}), start_time=1_000)
    server.set_attributes({"url.path": "/predict", "server.port": 8000, "ok": True,
                           "ratio": 0.5, "list": ["a", "b"], "url.path ": "moved"})
    server.set_attribute("url.path", "/predict/batch")
    token = context_api.attach(trace_api.set_span_in_context(server, parent))
    try:
        known = plain_attributes({"churnctl.rows": 2, "k7": "moved past the limit"})
        child = (tracer.start_child(server, "churnctl score", known, start_time=2_000)
                 if isinstance(tracer, RequestTracer) else
                 tracer.start_span("churnctl score", attributes=known, start_time=2_000))
        child.set_attributes({f"k{n}": n for n in range(140)})
        try:
            raise ValueError("no such customer")
        except ValueError as exc:
            child.record_exception(exc, {"extra": 1}, timestamp=2_500)
            child.set_status(Status(StatusCode.ERROR, "ValueError"))
        child.end(3_000)
        root = tracer.start_span("later", context_api.Context(), start_time=4_000)
        root.set_status(StatusCode.OK)
        root.end(5_000)
    finally:
        context_api.detach(token)
    server.update_name("POST /predict")
    server.set_status(StatusCode.ERROR, "boom")
    server.end(6_000)


def matches_sdk(resource: Resource, sampler: Any, limits: SpanLimits,
                parent_based: bool = False, always_on: bool = False) -> bool:
    """True when the scenario's spans encode to the same OTLP bytes both ways, with the same
    span contexts (their trace flags and state, which OTLP leaves out, propagate)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    encoded = []
    for lean in (False, True):
        exporter = InMemorySpanExporter()
        processor = SimpleSpanProcessor(exporter)
        provider = TracerProvider(sampler=sampler, resource=resource, id_generator=_NumberedIds(),
                                  span_limits=limits, shutdown_on_exit=False)
        provider.add_span_processor(processor)
        tracer = RequestTracer(provider, processor, limits, "check", parent_based,
                               always_on) if lean else (
            provider.get_tracer("check"))
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # the scenario's dropped attributes warn, twice
        try:
            _scenario(tracer)
        finally:
            logging.disable(previous)
        finished = exporter.get_finished_spans()
        encoded.append((encode_spans(finished).SerializeToString(),
                        [(tuple(span.context), span.parent and tuple(span.parent))
                         for span in finished]))
        provider.shutdown()
    return encoded[0] == encoded[1] and bool(encoded[0][0])
