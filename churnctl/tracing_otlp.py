"""OTLP/HTTP span export with an encoder of our own, checked against the library's.

The OTLP exporter's `encode_spans` builds a protobuf object per span, attribute and value, and
hashes every span's Resource through `json.dumps` to group them: ~41 µs a span here, and
`/predict` makes two spans a request, so encoding alone cost more than scoring one customer
(bench/results/tracing.json). `encode_request` writes the same protobuf wire format straight
from the SDK's ReadableSpans, in ~10 µs a span (each distinct attribute encoded once).

What it writes is the library's answer, not a reading of the spec: the first batches
(`VERIFY_BATCHES`) are encoded both ways and must be the same bytes or parse to equal
ExportTraceServiceRequests;
a difference, or any value this encoder does not know, sends that batch through the library's
encoder, and a difference keeps the library's for good (logged as an error). Transport,
retries, compression and the exporter's own metrics stay the library's: only the encoding
step of `OTLPSpanExporter.export` is replaced.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

log = logging.getLogger(__name__)
VERIFY_BATCHES = 3
CACHE_ENTRIES = 4096  # encoded attributes kept; cleared when full (NaN keys never match)
_ENCODED: dict[tuple[Any, ...], bytes] = {}
_SCALARS = frozenset({str, bool, int, float})
_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4,
         SpanKind.CONSUMER: 5}
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags masks
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_SMALL = [bytes([n]) for n in range(128)]


class UnknownValue(ValueError):
    """A value the hand-written encoder does not write: the library encodes the batch."""


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (bytes, string, message), present even when empty."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str | None) -> bytes:
    """A proto3 string field: absent when empty."""
    return _field(number, value.encode()) if value else b""


def _count(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _value(value: Any) -> bytes:
    """An AnyValue, as the library's `_encode_value` builds it (a oneof: set even when 0)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10" + _SMALL[int(value)]
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise UnknownValue(f"int {value} outside int64")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(6, b"".join(_field(1, _key_value(str(k), v)) for k, v in value.items()))
    raise UnknownValue(f"value of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _text(1, key) + _field(2, _value(value))


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    # Spans repeat their attributes (the same route, method, model version): each distinct
    # (field, key, type, value) is encoded once. The type is part of the key: True == 1.
    cache, parts = _ENCODED, []
    for key, value in attributes.items():
        kind = type(value)
        if kind not in _SCALARS:  # sequences: (1,) == (True,), so encoded each time
            parts.append(_field(number, _key_value(key, value)))
            continue
        token = (number, key, kind, value)
        encoded = cache.get(token)
        if encoded is None:
            encoded = _field(number, _key_value(key, value))
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()
            cache[token] = encoded
        parts.append(encoded)
    return b"".join(parts)


def _flags(context: Any) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if context is not None and context.is_remote else 0)


def _trace_state(state: Any) -> bytes:
    return _text(3, ",".join(f"{k}={v}" for k, v in state.items()) if state else "")


def _span(span: Any) -> bytes:
    context, parent = span.get_span_context(), span.parent
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08",
             context.span_id.to_bytes(8, "big"), _trace_state(context.trace_state)]
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
    parts += [_text(5, span.name), _count(6, _KIND[span.kind])]
    if span.start_time:
        parts += [b"\x39", _FIXED64(span.start_time)]
    if span.end_time:
        parts += [b"\x41", _FIXED64(span.end_time)]
    parts += [_attributes(9, span.attributes), _count(10, span.dropped_attributes)]
    for event in span.events:
        body = (b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b"") + _text(
            2, event.name) + _attributes(3, event.attributes) + _count(4, event.dropped_attributes)
        parts.append(_field(11, body))
    parts.append(_count(12, span.dropped_events))
    for link in span.links:
        body = (b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big") + b"\x12\x08"
                + link.context.span_id.to_bytes(8, "big") + _attributes(4, link.attributes)
                + _count(5, link.dropped_attributes) + b"\x35" + _FIXED32(_flags(link.context)))
        parts.append(_field(13, body))
    parts.append(_count(14, span.dropped_links))
    status = span.status
    if status is not None:
        parts.append(_field(15, _text(2, status.description) + _count(3, status.status_code.value)))
    parts += [b"\x85\x01", _FIXED32(_flags(parent))]
    return b"".join(parts)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return _field(1, b"")
    return _field(1, _text(1, scope.name) + _text(2, scope.version)
                  + _attributes(3, scope.attributes))


def encode_request(spans: Sequence[Any]) -> bytes:
    """The serialized ExportTraceServiceRequest for `spans`, grouped by resource, then by
    instrumentation scope, in first-seen order (as the library groups them)."""
    groups: list[tuple[Any, dict[Any, list[bytes]]]] = []
    for span in spans:
        resource = span.resource
        # One provider, one resource: `is` answers at once.
        scopes = next((found for known, found in groups
                       if known is resource or known == resource), None)
        if scopes is None:
            scopes = {}
            groups.append((resource, scopes))
        scopes.setdefault(span.instrumentation_scope or None, []).append(_span(span))
    out = []
    for resource, scopes in groups:
        body = [_field(1, _attributes(1, resource.attributes))]
        for scope, encoded in scopes.items():
            body.append(_field(2, _scope(scope) + b"".join(_field(2, s) for s in encoded)
                               + _text(3, scope.schema_url if scope else "")))
        body.append(_text(3, resource.schema_url))
        out.append(_field(1, b"".join(body)))
    return b"".join(out)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The library's OTLP/HTTP exporter with `encode_request` as its encoder once verified.

    `export` is the library's with the encoding step swapped, on the exporter's own client,
    metrics and request-size limit; where a library version lacks them (`fast` is False),
    the library's `export` runs unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        client, metrics = getattr(self, "_client", None), getattr(self, "_metrics", None)
        self.fast = callable(getattr(client, "export", None)) and callable(
            getattr(metrics, "export_operation", None))
        self._verify_left = VERIFY_BATCHES
        self._lock = threading.Lock()

    def encode(self, spans: Sequence[Any]) -> bytes:
        """The request body: ours once it has matched the library's, else the library's."""
        try:
            mine = encode_request(spans) if self.fast else None
        except UnknownValue:
            mine = None
        with self._lock:
            checking = self._verify_left > 0
            self._verify_left -= checking
        if mine is not None and not checking:
            return mine
        reference = encode_spans(spans)
        body = reference.SerializePartialToString()
        # Bytes first: a NaN attribute makes two equal messages compare unequal.
        if mine is not None and mine != body and (
                ExportTraceServiceRequest.FromString(mine) != reference):
            self.fast = False
            log.error("OTLP span encoding differs from the library's; exporting with the "
                      "library's encoder from now on")
        return body

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if not self.fast or getattr(self, "_shutdown", False):
            return super().export(spans)
        body = self.encode(spans)
        if len(body) > getattr(self, "_max_request_size", 0) > 0:
            return super().export(spans)  # the library drops it, with its warning and metric
        with self._metrics.export_operation(len(spans)) as result:
            answer = self._client.export(body)
            if not answer.success:
                result.error = answer.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
