"""The API's span export, done by a child process: `python -m churnctl.tracing_child`.

Why: the API scores on one event-loop thread, and the batch span processor's thread shares its
GIL. Encoding OTLP and posting it cost ~33 µs a span in that thread here, two spans a request,
and the event loop lost more than that while the two threads traded the GIL
(bench/bench_tracing.py). `ChildSpanExporter` is the exporter the SDK's BatchSpanProcessor
calls in the API process: it only flattens each ended span into plain tuples and writes them,
marshalled, to the child's stdin (a blocking write, GIL released, in the processor's thread).
The child exports them with the exporter the process would have used (`tracing._exporter`),
on its own GIL and core: over OTLP/HTTP it encodes the tuples directly (`export_flat`;
rebuilding ReadableSpans first cost the child more CPU than the API process saved), over gRPC
it rebuilds them for the library's exporter.

Delivery is what the SDK's processor gives, at most once: a full queue drops spans there; a
child that dies loses what it held, the write fails, the exporter reports FAILURE and starts a
new child (at most every RESTART_SECONDS). Shutdown closes the child's stdin and waits for it
to export what it read. The pipe carries only what this process wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from churnctl.tracing_wire import flatten

log = logging.getLogger(__name__)
FRAME = struct.Struct("<I")
RESTART_SECONDS = 5.0
PIPE_BYTES = 1 << 20  # the default /proc/sys/fs/pipe-max-size
SHUTDOWN_SECONDS = 30.0


def _batch(spans: Sequence[Any]) -> bytes:
    resource = spans[0].resource
    if any(span.resource is not resource and span.resource != resource for span in spans):
        raise ValueError("spans of more than one resource")  # one provider: never here
    return marshal.dumps((dict(resource.attributes), resource.schema_url,
                          [flatten(span) for span in spans]))


def _widen(pipe: Any) -> None:
    """A pipe that holds a few batches (Linux: 64 KiB by default, a ~250-span batch is
    ~50 KiB): the processor's thread writes a batch at once instead of waking up each time
    the child has read a part. Left as it is where the system does not allow it."""
    setting = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setting is None or pipe is None:
        return
    with contextlib.suppress(OSError):  # over pipe-max-size for this user: the default works
        fcntl.fcntl(pipe.fileno(), setting, PIPE_BYTES)


class ChildSpanExporter(SpanExporter):
    """Hands each batch to a `python -m churnctl.tracing_child` process (module docstring)."""

    def __init__(self, endpoint: str, protocol: str) -> None:
        self._argv = [sys.executable, "-m", "churnctl.tracing_child", endpoint, protocol]
        self._child: subprocess.Popen[bytes] | None = None
        self._next_start = 0.0
        self._lock = threading.Lock()

    def _running(self) -> subprocess.Popen[bytes] | None:
        if self._child is not None and self._child.poll() is None:
            return self._child
        if self._child is not None:
            log.warning("the span export process exited (%s); starting another",
                        self._child.returncode)
            self._child = None
        if time.monotonic() < self._next_start:
            return None
        self._next_start = time.monotonic() + RESTART_SECONDS
        self._child = subprocess.Popen(self._argv, stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL)
        _widen(self._child.stdin)
        return self._child

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        payload = _batch(spans)
        with self._lock:
            child = self._running()
            if child is None or child.stdin is None:
                return SpanExportResult.FAILURE
            try:
                child.stdin.write(FRAME.pack(len(payload)) + payload)
                child.stdin.flush()
            except OSError as exc:  # the child died: what it held is lost
                log.warning("span export process gone (%s): %d spans dropped", exc, len(spans))
                child.kill()
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # written batches are the child's; shutdown waits for them

    def shutdown(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        try:
            if child.stdin is not None:
                child.stdin.close()  # end of input: the child exports what it read and exits
            child.wait(timeout=SHUTDOWN_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()


def rebuild(resource_attributes: dict[str, Any], schema_url: str,
            flat: Sequence[tuple[Any, ...]]) -> list[Any]:
    """ReadableSpans equal to the ones `flatten` was given (tests compare their encoding)."""
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util import BoundedList
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
    from opentelemetry.trace.span import TraceState

    def context(values: tuple[Any, ...]) -> SpanContext:
        trace_id, span_id, flags, remote, state = values
        return SpanContext(trace_id, span_id, remote, TraceFlags(flags),
                           TraceState(list(state)) if state else None)

    def attributes(values: dict[str, Any], dropped: int) -> BoundedAttributes:
        found = BoundedAttributes(None, values)
        found.dropped = dropped
        return found

    def bounded(items: list[Any], dropped: int) -> BoundedList:
        found = BoundedList.from_seq(None, items)
        found.dropped = dropped
        return found

    resource = Resource(resource_attributes, schema_url)
    scopes: dict[Any, InstrumentationScope] = {}
    spans = []
    for (name, kind, own, parent, start, end, attrs, dropped_attrs, events, dropped_events,
         links, dropped_links, code, description, scope) in flat:
        key = repr(scope)
        if scope is not None and key not in scopes:
            scopes[key] = InstrumentationScope(scope[0], scope[1], scope[2], scope[3] or None)
        spans.append(ReadableSpan(
            name, context(own), context(parent) if parent is not None else None, resource,
            attributes(attrs, dropped_attrs),
            bounded([Event(n, attributes(a, d), t) for n, t, a, d in events], dropped_events),
            bounded([Link(context(c), attributes(a, d)) for c, a, d in links], dropped_links),
            SpanKind(kind), status=Status(StatusCode(code), description), start_time=start,
            end_time=end, instrumentation_scope=scopes.get(key)))
    return spans


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def main(argv: Sequence[str]) -> int:
    from churnctl.tracing import _exporter
    from churnctl.tracing_otlp import FastOTLPSpanExporter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the API, which stops us
    endpoint, protocol = argv
    exporter = _exporter(endpoint, protocol)
    stdin = sys.stdin.buffer
    try:
        while (head := _read_exactly(stdin, FRAME.size)) is not None:
            payload = _read_exactly(stdin, FRAME.unpack(head)[0])
            if payload is None:
                break
            batch = marshal.loads(payload)
            if isinstance(exporter, FastOTLPSpanExporter):  # OTLP/HTTP: no ReadableSpans
                exporter.export_flat(*batch, lambda batch=batch: rebuild(*batch))
            else:
                exporter.export(rebuild(*batch))
    finally:
        exporter.shutdown()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="churnctl span export: %(message)s")
    sys.exit(main(sys.argv[1:]))
