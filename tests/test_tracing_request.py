"""Request spans (churnctl.tracing_request): the same OTLP bytes as the SDK's own spans, the
SDK's sampler deciding, and the SDK's Tracer wherever the two would differ."""

from __future__ import annotations

import contextlib
import logging
import marshal
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("opentelemetry.sdk", reason="install churnctl[otel]")

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

from churnctl import tracing, tracing_api, tracing_check, tracing_request
from churnctl.tracing_check import matches_sdk
from churnctl.tracing_child import _batch, rebuild
from churnctl.tracing_request import RequestSpan, RequestTracer, local_context
from churnctl.tracing_wire import flatten_readable

RESOURCE = Resource.create({"service.name": "churnctl-test"})


@pytest.fixture
def fresh() -> Iterator[None]:
    tracing.shutdown()
    yield
    tracing.shutdown()


@pytest.mark.parametrize("sampler", [ParentBased(ALWAYS_ON), ParentBased(TraceIdRatioBased(0.3))])
@pytest.mark.parametrize("parent_based", [False, True])
def test_request_spans_encode_as_the_sdks_own(sampler: Any, parent_based: bool) -> None:
    assert matches_sdk(RESOURCE, sampler, SpanLimits(), parent_based)
    if sampler._root is ALWAYS_ON:
        assert matches_sdk(RESOURCE, sampler, SpanLimits(), parent_based, always_on=True)


def test_the_check_catches_a_root_shortcut_the_sampler_does_not_take() -> None:
    """`always_on` samples root spans without asking: a root sampler that drops them makes
    the two sides differ (configure() passes it only with ALWAYS_ON roots)."""
    drops_roots = ParentBased(TraceIdRatioBased(0.0))
    assert matches_sdk(RESOURCE, drops_roots, SpanLimits(), parent_based=True)
    assert not matches_sdk(RESOURCE, drops_roots, SpanLimits(), True, always_on=True)


def test_the_check_catches_a_span_that_keeps_a_reset_attribute_in_place(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def in_place(self: RequestSpan, attributes: Any) -> None:  # the SDK moves re-set keys last
        self._attributes.update(attributes)

    monkeypatch.setattr(RequestSpan, "set_attributes", in_place)
    assert not matches_sdk(RESOURCE, ParentBased(ALWAYS_ON), SpanLimits())


def test_the_check_catches_a_lost_dropped_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RequestSpan, "dropped_attributes", property(lambda self: 0))
    assert not matches_sdk(RESOURCE, ParentBased(ALWAYS_ON), SpanLimits())


def test_the_check_catches_a_child_that_drops_its_parents_random_flag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`start_child` (the score span) takes its flags from the parent without the sampler: one
    that forgot the parent's random-trace-id flag encodes differently."""
    assert matches_sdk(RESOURCE, ParentBased(ALWAYS_ON), SpanLimits(), True, True)
    real = RequestTracer.start_child

    def forgetful(self: RequestTracer, *args: Any, **kwargs: Any) -> Any:
        span = real(self, *args, **kwargs)
        own = span.get_span_context()
        span._context = local_context(own.trace_id, own.span_id, trace.TraceFlags(
            trace.TraceFlags.SAMPLED), own.trace_state)
        return span

    monkeypatch.setattr(RequestTracer, "start_child", forgetful)
    assert not matches_sdk(RESOURCE, ParentBased(ALWAYS_ON), SpanLimits(), True, True)


def test_checked_attributes_are_copied_by_each_span_that_takes_them() -> None:
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    processor = SimpleSpanProcessor(InMemorySpanExporter())
    tracer = RequestTracer(provider, processor, SpanLimits(), "t", True, True)
    shared = tracing_request.plain_attributes({"url.path": "/predict", "n": 1})
    first = tracer.start_span("a", attributes=shared)
    second = tracer.start_child(first, "b", shared)
    first.set_attribute("n", 2)
    second.set_attributes(tracing_request.plain_attributes({"extra": True}))
    assert dict(shared) == {"url.path": "/predict", "n": 1}
    assert first.attributes == {"url.path": "/predict", "n": 2}
    assert second.attributes == {"url.path": "/predict", "n": 1, "extra": True}
    assert type(first.flat()[6]) is dict  # marshal takes only exact dicts


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)),
                       st.one_of(st.text(max_size=3), st.booleans(), st.integers(),
                                 st.floats(allow_nan=False), st.none(),
                                 st.lists(st.integers(), max_size=2)), max_size=4))
def test_only_plain_attributes_are_taken_unchecked(attributes: dict[Any, Any]) -> None:
    """What `plain_attributes` lets through unchecked is what BoundedAttributes keeps as is."""
    from opentelemetry.attributes import BoundedAttributes

    made = tracing_request.plain_attributes(attributes)
    assert dict(made) == attributes
    if type(made) is tracing_request.PlainAttributes:
        with warnings_suppressed():
            assert dict(BoundedAttributes(None, attributes)) == attributes


def test_the_api_falls_back_to_the_sdks_tracer_when_the_check_fails(
        fresh: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(tracing_check, "matches_sdk", lambda *args, **kwargs: False)
    assert tracing.configure(exporter=InMemorySpanExporter())
    assert not isinstance(tracing.request_tracer(), RequestTracer)
    assert "SDK's Tracer" in caplog.text


def test_the_sdk_spans_switch_makes_the_api_use_the_sdks_tracer(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tracing.SDK_SPANS_ENV, "1")
    assert tracing.configure(exporter=InMemorySpanExporter())
    assert not isinstance(tracing.request_tracer(), RequestTracer)
    monkeypatch.delenv(tracing.SDK_SPANS_ENV)
    tracing.shutdown()
    assert tracing.configure(exporter=InMemorySpanExporter())
    assert isinstance(tracing.request_tracer(), RequestTracer)


def _tracer(sampler: Any, limits: SpanLimits | None = None
            ) -> tuple[RequestTracer, InMemorySpanExporter]:
    exporter, limits = InMemorySpanExporter(), limits or SpanLimits()
    processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(sampler=sampler, resource=RESOURCE, span_limits=limits,
                              shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return RequestTracer(provider, processor, limits, "t", parent_based=True), exporter


def test_the_sdks_sampler_decides_and_unsampled_spans_still_carry_a_context() -> None:
    tracer, exporter = _tracer(ParentBased(TraceIdRatioBased(0.0)))
    span = tracer.start_span("dropped")
    assert not span.is_recording()
    context = span.get_span_context()
    assert context.is_valid and not context.trace_flags.sampled
    child = tracer.start_span("child", trace.set_span_in_context(span))
    assert not child.is_recording() and child.get_span_context().trace_id == context.trace_id
    span.end()
    assert exporter.get_finished_spans() == ()


def test_an_ended_span_takes_no_change_and_is_exported_once() -> None:
    tracer, exporter = _tracer(ParentBased(ALWAYS_ON))
    span = tracer.start_span("once", attributes={"a": 1})
    span.end()
    span.set_attribute("late", True)
    span.update_name("renamed")
    span.end()
    (done,) = exporter.get_finished_spans()
    assert done.name == "once" and dict(done.attributes) == {"a": 1}


def test_a_value_length_limit_hands_spans_to_the_sdk() -> None:
    tracer, exporter = _tracer(ParentBased(ALWAYS_ON), SpanLimits(max_attribute_length=3))
    span = tracer.start_span("long")
    span.set_attribute("text", "abcdef")
    span.end()
    (done,) = exporter.get_finished_spans()
    assert not isinstance(span, RequestSpan) and done.attributes["text"] == "abc"


def test_flattened_spans_rebuild_to_the_same_otlp_bytes() -> None:
    """What the API process writes to the export process is what it would have exported:
    attributes past the limit, an exception event, statuses, remote parents and all."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, span_limits=SpanLimits(),
                              shutdown_on_exit=False)
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    tracing_check._scenario(RequestTracer(provider, processor, SpanLimits(), "t"))
    tracing_check._scenario(provider.get_tracer("sdk"))
    linked = provider.get_tracer("sdk").start_span(
        "linked", links=[trace.Link(exporter.get_finished_spans()[0].context, {"why": "x"})])
    linked.end()
    spans = exporter.get_finished_spans()
    assert any(span.dropped_attributes for span in spans) and any(span.events for span in spans)
    again = rebuild(*marshal.loads(_batch(spans)))
    assert encode_spans(again).SerializeToString() == encode_spans(spans).SerializeToString()
    mine = [span for span in spans if isinstance(span, RequestSpan)]
    assert len(mine) == 3 and not all(span.events for span in mine)
    assert [span.flat() for span in mine] == [flatten_readable(span) for span in mine]


def test_the_check_catches_a_parent_based_shortcut_the_sampler_does_not_take() -> None:
    """`parent_based` skips the sampler for a sampled local parent's child: a sampler that
    drops such children makes the two sides differ, and the API then uses the SDK's Tracer."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    drops_children = ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF)
    assert matches_sdk(RESOURCE, drops_children, SpanLimits(), parent_based=False)
    assert not matches_sdk(RESOURCE, drops_children, SpanLimits(), parent_based=True)


def test_server_span_attributes_are_worked_out_once_per_request_line_and_host(
        fresh: None) -> None:
    assert tracing.configure(exporter=InMemorySpanExporter())
    spans = tracing_api.ServerSpans(app=None)

    def scope(host: bytes, path: str = "/predict", query: bytes = b"") -> dict[str, Any]:
        return {"type": "http", "scheme": "http", "http_version": "1.1", "path": path,
                "query_string": query, "headers": [(b"host", host)], "server": ["s", 80]}

    first = spans._attributes(scope(b"a.example:8000"), "POST")
    assert spans._attributes(scope(b"a.example:8000"), "POST") is first  # cached
    other = spans._attributes(scope(b"b.example"), "POST")
    assert (other["server.address"], other["server.port"]) == ("b.example", 80)
    assert (first["server.address"], first["server.port"]) == ("a.example", 8000)
    assert spans._attributes(scope(b"a.example:8000", "/model"), "GET")["url.path"] == "/model"
    assert spans._attributes(scope(b"a.example:8000", query=b"sig=x"), "POST")[
        "url.query"] == "sig=REDACTED"
    for n in range(tracing_api.KNOWN_REQUESTS + 1):  # bounded: cleared when full
        spans._attributes(scope(f"h{n}".encode()), "POST")
    assert len(spans._known) <= tracing_api.KNOWN_REQUESTS


def test_score_span_attributes_follow_the_snapshot_and_the_rows(fresh: None) -> None:
    """Worked out once per (snapshot, rows): a swapped model or another batch size shows."""
    import asyncio
    from types import SimpleNamespace

    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter=exporter)

    async def score(snapshot: Any, records: list[Any], frame: Any = None) -> int:
        return len(records)

    scored = tracing_api.traced_score(score, "feast")
    old, new = (SimpleNamespace(version=v, scorer=SimpleNamespace(kind="hgb"), variant=None)
                for v in ("1", "2"))
    for snapshot, rows in ((old, 1), (old, 1), (old, 3), (new, 3), (new, 1)):
        assert asyncio.run(scored(snapshot, [{}] * rows)) == rows
    seen = [(span.attributes["churnctl.model_version"], span.attributes["churnctl.rows"],
             span.attributes["churnctl.feature_source"])
            for span in exporter.get_finished_spans()]
    assert seen == [("1", 1, "feast"), ("1", 1, "feast"), ("1", 3, "feast"), ("2", 3, "feast"),
                    ("2", 1, "feast")]


def test_server_span_names_are_bounded(fresh: None) -> None:
    assert tracing.configure(exporter=InMemorySpanExporter())
    spans = tracing_api.ServerSpans(app=None)
    tracer = tracing.request_tracer()
    for n in range(tracing_api.KNOWN_REQUESTS + 1):  # the method is the client's to choose
        span = tracer.start_span(f"M{n}")
        spans._ended(span, f"M{n}", "/predict", 200, "")
        assert span.name == f"M{n} /predict"
    assert len(spans._ends) <= tracing_api.KNOWN_REQUESTS


def test_a_pipeline_run_never_pays_the_start_up_check(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(tracing_check, "matches_sdk",
                        lambda *args, **kwargs: calls.append(args) or True)
    assert tracing.configure(exporter=InMemorySpanExporter())
    with tracing.span("churnctl run"), tracing.span("stage ingest"):
        pass
    assert calls == []  # only the API's first use of its tracer runs it
    assert isinstance(tracing.request_tracer(), RequestTracer) and len(calls) == 1
    assert tracing.request_tracer() is tracing.request_tracer() and len(calls) == 1


@settings(max_examples=300, deadline=None)
@given(st.integers(-1, (1 << 128) + 1), st.integers(-1, (1 << 64) + 1), st.booleans(),
       st.sampled_from([None, "", "k=v,a=b"]))
def test_local_contexts_are_the_apis_span_contexts(trace_id: int, span_id: int, sampled: bool,
                                                   state: str | None) -> None:
    flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else 0)
    given_state = None if state is None else trace.TraceState(
        [tuple(pair.split("=")) for pair in state.split(",") if pair])
    mine = local_context(trace_id, span_id, flags, given_state)
    api = trace.SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags,
                            trace_state=given_state)
    assert type(mine) is type(api) and tuple(mine) == tuple(api)
    assert mine.is_valid == api.is_valid and mine.trace_state == api.trace_state


@contextlib.contextmanager
def warnings_suppressed() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
