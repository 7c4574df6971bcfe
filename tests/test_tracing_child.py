"""The API's span export by a child process (churnctl.tracing_child), against a real OTLP
collector: spans arrive with their parent links, a killed export process is replaced, and
shutdown waits for what the child had read."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="install churnctl[otel]")

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from churnctl import tracing, tracing_child
from churnctl.tracing_child import ChildSpanExporter
from tests.test_tracing import OTEL_ENV, _collected, collector  # noqa: F401 (the fixture)


def _spans(*names: str) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "child-test"}),
                              span_limits=SpanLimits(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for name in names:
        tracer.start_span(name).end()
    return list(exporter.get_finished_spans())


def test_api_spans_reach_a_real_collector_through_the_export_process(
        collector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    tracing.shutdown()
    try:
        assert tracing.configure(f"http://127.0.0.1:{collector['http']}", export_in_child=True)
        tracer = tracing.request_tracer()
        server = tracer.start_span("child server", kind=trace.SpanKind.SERVER)
        server.set_attributes({"http.route": "/predict", "churnctl.rows": 2})
        tracer.start_span("child score", trace.set_span_in_context(server)).end()
        server.end()
    finally:
        tracing.shutdown()  # the batch to the child, then the child's own export, then exit
    spans = {s["Name"].strip(): s for s in _collected(collector["log"],
                                                      {"child server", "child score"})}
    assert spans["child score"]["Parent ID"].strip() == spans["child server"]["ID"].strip()
    assert "churnctl.rows: Int(2)" in spans["child server"]["attributes"]


def test_a_killed_export_process_is_replaced_and_shutdown_waits_for_the_last(
        collector: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(tracing_child, "RESTART_SECONDS", 60.0)  # however slow the wait below
    exporter = ChildSpanExporter(f"http://127.0.0.1:{collector['http']}", "http/protobuf")
    assert exporter.export(_spans("before kill")) is SpanExportResult.SUCCESS
    first = exporter.pid
    assert first is not None
    assert _pipe_bytes(exporter) == tracing_child.PIPE_BYTES  # a whole batch per write
    _collected(collector["log"], {"before kill"})
    os.kill(first, signal.SIGKILL)
    time.sleep(0.5)
    # Within RESTART_SECONDS of the last start: refused, not blocked.
    assert exporter.export(_spans("refused")) is SpanExportResult.FAILURE
    exporter._next_start = 0.0  # RESTART_SECONDS later
    assert exporter.export(_spans("after kill")) is SpanExportResult.SUCCESS
    assert exporter.pid not in (None, first)
    second = exporter.pid
    assert _pipe_bytes(exporter) == tracing_child.PIPE_BYTES
    exporter.shutdown()
    assert _pid_gone(second)
    names = {s.get("Name", "").strip() for s in _collected(collector["log"], {"after kill"})}
    assert {"before kill", "after kill"} <= names and "refused" not in names


def _pipe_bytes(exporter: ChildSpanExporter) -> int:
    import fcntl

    assert exporter._child is not None and exporter._child.stdin is not None
    return fcntl.fcntl(exporter._child.stdin.fileno(), fcntl.F_GETPIPE_SZ)


def _pid_gone(pid: int | None) -> bool:
    try:
        os.kill(pid or 0, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_stalled_export_process_never_blocks_the_request_path(
        collector: dict[str, Any]) -> None:  # noqa: F811
    """A child that stops reading (SIGSTOP): the pipe fills and the batch thread's write waits,
    but ending spans (what a request does) only queues them; the SDK's queue drops past its
    size. Once the child reads again, later spans arrive."""
    import threading

    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = ChildSpanExporter(f"http://127.0.0.1:{collector['http']}", "http/protobuf")
    processor = BatchSpanProcessor(exporter, max_queue_size=512, schedule_delay_millis=50,
                                   max_export_batch_size=64)
    for span in _spans("before stall"):
        processor.on_end(span)
    assert processor.force_flush()
    child = exporter.pid
    assert child is not None
    stalled = _spans(*[f"stalled {n} " + "x" * 200 for n in range(64)])

    def requests() -> None:
        for _ in range(300):  # ~5 MB of spans: far past the pipe's buffer
            for span in stalled:
                processor.on_end(span)

    os.kill(child, signal.SIGSTOP)
    try:
        worker = threading.Thread(target=requests, daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "ending spans waited on the stalled export process"
    finally:
        os.kill(child, signal.SIGCONT)
    for span in _spans("after stall"):
        processor.on_end(span)
    processor.shutdown()
    assert "after stall" in {s.get("Name", "").strip() for s in _collected(
        collector["log"], {"after stall"}, timeout=30)}
