"""The hand-written OTLP span encoder writes the library's bytes, falls back to the library
for what it does not know or for good once it differs, and its bytes reach a real collector."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="install churnctl[otel]")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from churnctl import tracing_otlp
from churnctl.tracing_otlp import FastOTLPSpanExporter, encode_flat, encode_request
from churnctl.tracing_wire import flatten

INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
SCALARS = st.one_of(st.text(max_size=20), st.booleans(), INT64,
                    st.floats(allow_nan=True, allow_infinity=True))
VALUES = st.one_of(SCALARS, *(st.lists(kind, max_size=4).map(tuple) for kind in (
    st.text(max_size=5), st.booleans(), INT64, st.floats(allow_nan=False))))
ATTRIBUTES = st.dictionaries(st.text(min_size=1, max_size=12), VALUES, max_size=6)
KINDS = st.sampled_from(list(SpanKind))


def _spans(draw: Any, count: int) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(draw(ATTRIBUTES)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracers = [provider.get_tracer("churnctl", "1.0", attributes=draw(ATTRIBUTES)),
               provider.get_tracer(draw(st.text(max_size=8)))]
    remote = propagate.extract({
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "k1=v1,k2=v2"})
    for i in range(count):
        tracer = tracers[draw(st.integers(0, 1))]
        parent = remote if draw(st.booleans()) else None
        with tracer.start_as_current_span(draw(st.text(max_size=15)), context=parent,
                                          kind=draw(KINDS), attributes=draw(ATTRIBUTES)) as span:
            for _ in range(draw(st.integers(0, 2))):
                span.add_event(draw(st.text(max_size=8)), draw(ATTRIBUTES))
            with tracer.start_as_current_span(f"child {i}", links=[
                    Link(span.get_span_context(), draw(ATTRIBUTES))]) as child:
                child.set_status(Status(draw(st.sampled_from(list(StatusCode))),
                                        draw(st.text(max_size=8))))
                if draw(st.booleans()):
                    child.record_exception(ValueError(draw(st.text(max_size=8))))
    provider.shutdown()
    return list(memory.get_finished_spans())


def _has_nan(message: Any) -> bool:
    return "nan" in str(message).lower()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_encoder_writes_the_librarys_bytes(data: st.DataObject) -> None:
    spans = _spans(data.draw, data.draw(st.integers(1, 4)))
    reference = encode_spans(spans)
    mine = encode_request(spans)
    assert mine == reference.SerializeToString()  # byte for byte, NaN included
    if not _has_nan(reference):
        assert ExportTraceServiceRequest.FromString(mine) == reference


def test_equal_values_of_another_type_are_not_confused_by_the_cache() -> None:
    spans = []
    for value in (True, 1, 1.0, (1,), (True,)):
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.get_tracer("t").start_span("s", attributes={"k": value}).end()
        spans += memory.get_finished_spans()
    assert encode_request(spans) == encode_spans(spans).SerializeToString()


def test_minus_zero_after_zero_is_not_taken_from_the_cache() -> None:
    # 0.0 == -0.0 (and hashes alike), but they are different doubles on the wire.
    for attributes in ({"k": 0.0}, {"k": -0.0}, {"k": 0.0, "s": "x"}, {"k": -0.0, "s": "x"}):
        spans = _finished(attributes)
        assert encode_request(spans) == encode_spans(spans).SerializeToString(), attributes


def test_flattened_spans_encode_as_the_library_encodes_their_readable_spans() -> None:
    spans = _finished({"a": 1, "b": "c", "d": True})
    resource = spans[0].resource
    flat = [flatten(span) for span in spans * 3]
    assert encode_flat(resource.attributes, resource.schema_url, flat) == (
        encode_spans(spans * 3).SerializeToString())


def test_flat_export_checks_its_first_batches_against_the_library(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = _exporter()
    spans = _finished({"a": 1})
    resource = spans[0].resource
    flat = [flatten(span) for span in spans]
    sent: list[bytes] = []
    monkeypatch.setattr(exporter, "_post", lambda body, count, spans: sent.append(body))
    made: list[int] = []

    def readable() -> list[Any]:
        made.append(1)
        return spans

    for _ in range(tracing_otlp.VERIFY_BATCHES + 2):
        exporter.export_flat(resource.attributes, resource.schema_url, flat, readable)
    good = encode_spans(spans).SerializeToString()
    assert sent == [good] * (tracing_otlp.VERIFY_BATCHES + 2)
    assert len(made) == tracing_otlp.VERIFY_BATCHES  # ReadableSpans only while checking
    assert exporter.fast
    exporter._verify_left = 1
    monkeypatch.setattr(tracing_otlp, "encode_flat", lambda *_: b"\x0a\x00")  # wrong bytes
    exporter.export_flat(resource.attributes, resource.schema_url, flat, readable)
    assert sent[-1] == good and not exporter.fast  # the library's bytes, and for good


def _exporter() -> FastOTLPSpanExporter:
    return FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")


def _finished(attributes: dict[str, Any]) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("t").start_span("s", attributes=attributes).end()
    return list(memory.get_finished_spans())


def test_a_difference_keeps_the_librarys_encoder_for_good(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    exporter = _exporter()
    assert exporter.fast  # this library version has what the fast export needs
    spans = _finished({"a": 1})
    good = encode_spans(spans).SerializeToString()
    monkeypatch.setattr(tracing_otlp, "encode_request", lambda _: b"\x0a\x00")  # wrong bytes
    assert exporter.encode(spans) == good
    assert not exporter.fast
    assert "differs from the library's" in caplog.text
    monkeypatch.undo()
    exporter._verify_left = 0
    assert exporter.encode(spans) == good  # the library's, though verification is over


def test_verified_bytes_are_ours_and_unknown_values_go_to_the_library(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = _exporter()
    spans = _finished({"a": "b"})
    for _ in range(tracing_otlp.VERIFY_BATCHES):
        exporter.encode(spans)
    calls: list[int] = []
    real = tracing_otlp.encode_spans
    monkeypatch.setattr(tracing_otlp, "encode_spans",
                        lambda s: calls.append(len(s)) or real(s))
    assert exporter.encode(spans) == real(spans).SerializeToString() and calls == []

    def unknown(_: Any) -> bytes:
        raise tracing_otlp.UnknownValue("x")

    monkeypatch.setattr(tracing_otlp, "encode_request", unknown)
    assert exporter.encode(spans) == real(spans).SerializeToString() and calls == [1]
    assert exporter.fast  # not a difference: the next batch is ours again


def test_nan_is_written_as_the_library_writes_it() -> None:
    spans = _finished({"x": math.nan, "y": -0.0})
    assert encode_request(spans) == encode_spans(spans).SerializeToString()


def test_a_nan_attribute_is_not_taken_for_a_difference() -> None:
    exporter = _exporter()
    spans = _finished({"x": math.nan})
    assert exporter.encode(spans) == encode_spans(spans).SerializeToString()
    assert exporter.fast  # NaN != NaN in a parsed message; the bytes are the same
