"""The OTLP protobuf wire format of spans, written by hand: what churnctl.tracing_otlp sends.

Spans travel as `flatten`ed tuples of plain values (marshal-able: churnctl.tracing_child
pipes them to its export process) and `encode_flat` writes them as a serialized
ExportTraceServiceRequest, the bytes the library's `encode_spans` makes from ReadableSpans
(tests/test_tracing_otlp.py compares them on generated spans; the exporter compares its first
batches at run time). Only SDK types are imported: the API process flattens without loading
an exporter.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

CACHE_ENTRIES = 4096  # encoded attributes kept; cleared when full (NaN keys never match)
_ENCODED: dict[tuple[Any, ...], bytes] = {}
_CACHED = frozenset({str, bool, int})  # value types whose encoding is cached
_KINDS = {kind: kind.value for kind in SpanKind}
_CODES = {code: code.value for code in StatusCode}
_SCOPES: dict[Any, tuple[Any, ...]] = {}  # a tracer's scope, flattened: a handful per process
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
    # Spans repeat their attributes (the same route, method, model version): a whole set of
    # str/bool/int values is encoded once, else each (field, key, type, value). The types
    # are part of the key (True == 1); floats are never cached (-0.0 == 0.0, NaN != NaN).
    cache = _ENCODED
    kinds = tuple(map(type, attributes.values()))
    whole = (number, tuple(attributes.items()), kinds) if _CACHED.issuperset(kinds) else None
    if whole is not None and (found := cache.get(whole)) is not None:
        return found
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        if kind not in _CACHED:  # floats, sequences ((1,) == (True,)): encoded each time
            parts.append(_field(number, _key_value(key, value)))
            continue
        token = (number, key, kind, value)
        encoded = cache.get(token)
        if encoded is None:
            encoded = _remember(token, _field(number, _key_value(key, value)))
        parts.append(encoded)
    encoded = b"".join(parts)
    return encoded if whole is None else _remember(whole, encoded)


def _remember(token: tuple[Any, ...], encoded: bytes) -> bytes:
    if len(_ENCODED) >= CACHE_ENTRIES:
        _ENCODED.clear()
    _ENCODED[token] = encoded
    return encoded


def context_values(context: Any) -> tuple[Any, ...]:
    # A SpanContext is a tuple: unpacking it skips five property calls.
    trace_id, span_id, remote, flags, state = context[:5]
    return trace_id, span_id, int(flags), remote, tuple(state.items()) if state else ()


def flatten(span: Any) -> tuple[Any, ...]:
    """A ReadableSpan as plain (marshal-able) values: what `encode_flat` encodes and
    churnctl.tracing_child's `rebuild` turns back into a ReadableSpan. A span with a `flat()`
    method (churnctl's request spans) flattens itself, faster, from its own fields."""
    own = getattr(span, "flat", None)
    return own() if own is not None else flatten_readable(span)


def flatten_readable(span: Any) -> tuple[Any, ...]:
    """`flatten` through the ReadableSpan properties."""
    scope, status, parent = span.instrumentation_scope, span.status, span.parent
    events, links = span.events, span.links
    return (span.name, _KINDS[span.kind], context_values(span.get_span_context()),
            None if parent is None else context_values(parent), span.start_time, span.end_time,
            dict(span.attributes), span.dropped_attributes,
            [(e.name, e.timestamp, dict(e.attributes or {}), e.dropped_attributes)
             for e in events] if events else (), span.dropped_events,
            [(context_values(link.context), dict(link.attributes or {}),
              link.dropped_attributes)
             for link in links] if links else (), span.dropped_links,
            _CODES[status.status_code], status.description, flat_scope(scope))


def flat_scope(scope: Any) -> tuple[Any, ...] | None:
    if scope is None:
        return None
    found = _SCOPES.get(scope)
    if found is None:
        found = _SCOPES[scope] = (scope.name, scope.version, scope.schema_url,
                                  dict(scope.attributes or {}))
    return found


def _flags(remote: bool | None) -> bytes:
    return _FIXED32(_HAS_IS_REMOTE | (_IS_REMOTE if remote else 0))


def _span(flat: tuple[Any, ...]) -> bytes:
    (name, kind, (trace_id, span_id, _, _, state), parent, start, end, attributes,
     dropped_attributes, events, dropped_events, links, dropped_links, code, description,
     _) = flat
    parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big"),
             _text(3, ",".join(f"{k}={v}" for k, v in state) if state else "")]
    if parent is not None:
        parts += [b"\x22\x08", parent[1].to_bytes(8, "big")]
    parts += [_text(5, name), _count(6, kind + 1)]  # OTLP numbers kinds from 1
    if start:
        parts += [b"\x39", _FIXED64(start)]
    if end:
        parts += [b"\x41", _FIXED64(end)]
    parts += [_attributes(9, attributes), _count(10, dropped_attributes)]
    for event_name, timestamp, event_attributes, event_dropped in events:
        body = (b"\x09" + _FIXED64(timestamp) if timestamp else b"") + _text(
            2, event_name) + _attributes(3, event_attributes) + _count(4, event_dropped)
        parts.append(_field(11, body))
    parts.append(_count(12, dropped_events))
    for context, link_attributes, link_dropped in links:
        body = (b"\x0a\x10" + context[0].to_bytes(16, "big") + b"\x12\x08"
                + context[1].to_bytes(8, "big") + _attributes(4, link_attributes)
                + _count(5, link_dropped) + b"\x35" + _flags(context[3]))
        parts.append(_field(13, body))
    parts += [_count(14, dropped_links), _field(15, _text(2, description) + _count(3, code)),
              b"\x85\x01", _flags(parent is not None and parent[3])]
    return b"".join(parts)


def encode_flat(resource_attributes: Mapping[str, Any], schema_url: str,
                flat: Sequence[tuple[Any, ...]]) -> bytes:
    """The serialized ExportTraceServiceRequest for flattened spans of one resource, grouped
    by instrumentation scope (name, version, schema URL: the library's equality) in
    first-seen order, each group with its first span's scope (as the library groups them)."""
    scopes: dict[Any, tuple[Any, list[bytes]]] = {}
    for span in flat:
        scope = span[14]
        key = None if scope is None else scope[:3]
        group = scopes.get(key)
        if group is None:
            group = scopes[key] = (scope, [])
        group[1].append(_span(span))
    body = [_field(1, _attributes(1, resource_attributes))]
    for scope, encoded in scopes.values():
        head = _field(1, b"") if scope is None else _field(
            1, _text(1, scope[0]) + _text(2, scope[1]) + _attributes(3, scope[3]))
        body.append(_field(2, head + b"".join(_field(2, s) for s in encoded)
                           + _text(3, scope[2] if scope else "")))
    body.append(_text(3, schema_url))
    return _field(1, b"".join(body))


def encode_request(spans: Sequence[Any]) -> bytes:
    """The serialized ExportTraceServiceRequest for ReadableSpans, grouped by resource in
    first-seen order, then as `encode_flat` groups them."""
    groups: list[tuple[Any, list[tuple[Any, ...]]]] = []
    for span in spans:
        resource = span.resource
        # One provider, one resource: `is` answers at once.
        found = next((group for known, group in groups
                      if known is resource or known == resource), None)
        if found is None:
            found = []
            groups.append((resource, found))
        found.append(flatten(span))
    return b"".join(encode_flat(resource.attributes, resource.schema_url, flat)
                    for resource, flat in groups)


