"""OTLP/HTTP span export with an encoder of our own, checked against the library's.

The OTLP exporter's `encode_spans` builds a protobuf object per span, attribute and value, and
hashes every span's Resource through `json.dumps` to group them: ~41 µs a span here, and
`/predict` makes two spans a request, so encoding alone cost more than scoring one customer
(bench/results/tracing.json). churnctl.tracing_wire writes the same protobuf wire format by
hand, from ReadableSpans (`encode_request`) or from the flattened spans the API's export
process receives (`encode_flat`, which needs no ReadableSpans at all), each distinct set of
attributes encoded once.

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
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult

from churnctl.tracing_wire import UnknownValue, encode_flat, encode_request

log = logging.getLogger(__name__)
VERIFY_BATCHES = 3
__all__ = ["FastOTLPSpanExporter", "UnknownValue", "encode_flat", "encode_request"]


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
        return self._checked(lambda: encode_request(spans), lambda: spans)

    def _checked(self, encode: Callable[[], bytes], spans: Callable[[], Sequence[Any]]
                 ) -> bytes:
        try:
            mine = encode() if self.fast else None
        except UnknownValue:
            mine = None
        with self._lock:
            checking = self._verify_left > 0
            self._verify_left -= checking
        if mine is not None and not checking:
            return mine
        reference = encode_spans(spans())
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
        return self._post(self.encode(spans), len(spans), lambda: spans)

    def export_flat(self, resource_attributes: Mapping[str, Any], schema_url: str,
                    flat: Sequence[tuple[Any, ...]], spans: Callable[[], Sequence[Any]]
                    ) -> SpanExportResult:
        """`export` for flattened spans of one resource (churnctl.tracing_child), encoded
        without making ReadableSpans; `spans()` makes them where the library needs them
        (the first batches' check, the library's encoder, an over-size request)."""
        if not self.fast or getattr(self, "_shutdown", False):
            return super().export(spans())
        body = self._checked(lambda: encode_flat(resource_attributes, schema_url, flat), spans)
        return self._post(body, len(flat), spans)

    def _post(self, body: bytes, count: int, spans: Callable[[], Sequence[Any]]
              ) -> SpanExportResult:
        if len(body) > getattr(self, "_max_request_size", 0) > 0:
            return super().export(spans())  # the library drops it, with its warning and metric
        with self._metrics.export_operation(count) as result:
            answer = self._client.export(body)
            if not answer.success:
                result.error = answer.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
