"""Request spans for the API: the SDK's sampler, ids, resource, limits and batch processor,
without the SDK span's per-span bookkeeping; checked against the SDK's own spans at start.

Why: `/predict` makes two spans a request. Through the SDK's Tracer each costs ~25-45 µs
here (a BoundedAttributes and two BoundedLists per span, every attribute cleaned through a
generic recursive check under a lock, the sampler, a ReadableSpan copy at end), more than
scoring one customer (~65 µs a request); bench/bench_tracing.py measures both kinds of span.
`RequestTracer` makes the same spans from the same parts: the provider's sampler decides,
its id generator numbers, its resource and scope label them, and the ended span itself (a
ReadableSpan that takes no change once ended) goes to the provider's processor. Plain
attribute values (str, bool, int, float) are stored as given; anything else is cleaned by
the SDK's BoundedAttributes, as are event attributes; `PlainAttributes`, the sets the API
repeats (checked once, when made), are taken without checking. `start_child` makes a
sampled parent's child without the sampler's choices (the score span). Links, and span
limits on value length, are rare here and go to the SDK's Tracer.

churnctl.tracing_check compares them with the SDK's own spans at start-up: the API uses them
only where they are the same. What they do not do: the SDK's own span metrics
(`otel.sdk.span.*`, which need a MeterProvider this process never sets).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags, TraceState

from churnctl.tracing_wire import context_values, flat_scope, flatten_readable

log = logging.getLogger(__name__)
_PLAIN = frozenset({str, bool, int, float})  # exact types: subclasses go through the SDK
_STR = frozenset({str})
_FLAGS = {(sampled, random): TraceFlags(sampled * TraceFlags.SAMPLED
                                        | random * TraceFlags.RANDOM_TRACE_ID)
          for sampled in (False, True) for random in (False, True)}  # by (sampled, random id)
_TRACE_ID_MAX, _SPAN_ID_MAX = (1 << 128) - 1, (1 << 64) - 1  # W3C trace context ids
_NO_STATE = TraceState.get_default()


def _plain(attributes: Mapping[str, Any]) -> bool:
    return type(attributes) is PlainAttributes or (
        set(map(type, attributes.values())) <= _PLAIN and set(map(type, attributes)) <= _STR
        and "" not in attributes)


class PlainAttributes(dict):  # type: ignore[type-arg]
    """Span attributes checked once, when made (`plain_attributes`): the API's requests repeat
    a few sets, and spans take these without checking them again. Not to be changed."""


def plain_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """`attributes` as PlainAttributes when every key is a non-empty str and every value a
    str, bool, int or float; otherwise a dict, checked whenever a span takes it."""
    return PlainAttributes(attributes) if _plain(attributes) else dict(attributes)


def local_context(trace_id: int, span_id: int, flags: TraceFlags,
                  state: TraceState | None) -> trace_api.SpanContext:
    """`SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=state)`,
    the same tuple without the call's argument handling (~1 µs less a span; a property-based
    test compares the two)."""
    return tuple.__new__(trace_api.SpanContext, (  # type: ignore[return-value]
        trace_id, span_id, False, flags, _NO_STATE if state is None else state,
        0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX))


class RequestSpan(trace_api.Span, ReadableSpan):
    """A recording span that is its own ReadableSpan: once ended nothing changes it.

    What every new span starts with is a class attribute (ReadableSpan's properties read
    them), so making one sets only what differs: ~2 µs less a span than ReadableSpan's
    __init__. Events, and a status, replace the class's value on the instance."""

    _events: Any = ()
    _links: Any = ()
    _end_time: int | None = None
    _status = Status(StatusCode.UNSET)
    _instrumentation_info = None
    _dropped_attributes = _dropped_events = 0

    def __init__(self, tracer: RequestTracer, name: str, context: trace_api.SpanContext,
                 parent: trace_api.SpanContext | None, kind: SpanKind,
                 record_exception: bool, set_status_on_exception: bool) -> None:
        self._name, self._context, self._parent, self._kind = name, context, parent, kind
        self._resource, self._instrumentation_scope = tracer.resource, tracer.scope
        self._attributes: dict[str, Any] = {}
        self._tracer, self._lock = tracer, threading.Lock()
        self._record_exception, self._set_status = record_exception, set_status_on_exception

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    def get_span_context(self) -> trace_api.SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        with self._lock:
            if self._end_time is not None:
                log.warning("Setting attribute on ended span.")
                return
            found, limit = self._attributes, self._tracer.limits.max_span_attributes
            if ((limit is None or len(found) + len(attributes) <= limit)
                    and found.keys().isdisjoint(attributes) and _plain(attributes)):
                found.update(attributes)  # new keys, in order: what BoundedAttributes holds
                return
            for key, value in attributes.items():
                self._put(key, value)

    def _take(self, attributes: Mapping[str, Any]) -> None:
        """The attributes a new span starts with: checked ones taken as they are."""
        limit = self._tracer.limits.max_span_attributes
        if type(attributes) is PlainAttributes and (limit is None or len(attributes) <= limit):
            self._attributes = dict(attributes)
        else:
            self.set_attributes(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def _put(self, key: str, value: Any) -> None:
        if type(value) not in _PLAIN or type(key) is not str or not key:
            cleaned = BoundedAttributes(None, {key: value})  # the SDK's checks (and warning)
            if not cleaned:
                self._dropped_attributes += 1
                return
            value = cleaned[key]
        found = self._attributes
        if key in found:  # re-set keys move last, as in the SDK's BoundedAttributes
            del found[key]
        limit = self._tracer.limits.max_span_attributes
        if limit is not None and len(found) >= limit:
            if limit == 0:
                self._dropped_attributes += 1
                return
            del found[next(iter(found))]
            self._dropped_attributes += 1
        found[key] = value

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        limits = self._tracer.limits
        event = Event(name, BoundedAttributes(limits.max_event_attributes, attributes,
                                              max_value_len=limits.max_attribute_length),
                      timestamp)
        with self._lock:
            if self._end_time is not None:
                log.warning("Tried calling _add_event on an ended span.")
                return
            if limits.max_events is not None and len(self._events) >= limits.max_events:
                self._dropped_events += 1
                if not limits.max_events:
                    return
                self._events.pop(0)
            if not self._events:
                self._events = []  # the instance's own list, not the class's ()
            self._events.append(event)

    def record_exception(self, exception: BaseException, attributes: Any = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        kind = type(exception)
        module = kind.__module__
        found = {"exception.type": f"{module}.{kind.__qualname__}"
                 if module and module != "builtins" else kind.__qualname__,
                 "exception.message": str(exception),
                 "exception.stacktrace": "".join(traceback.format_exception(exception)),
                 "exception.escaped": str(escaped)}
        self.add_event("exception", {**found, **(attributes or {})}, timestamp)

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        elif description is not None:
            log.warning("Description %s ignored. Use either `Status` or `(StatusCode, "
                        "Description)`", description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                log.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
        self._tracer.processor.on_end(self)

    def flat(self) -> tuple[Any, ...]:
        """churnctl.tracing_wire's `flatten` of this ended span, from its fields: the
        attributes dict itself, as nothing changes an ended span (a test compares the two)."""
        if self._events or self._end_time is None:
            return flatten_readable(self)
        status, parent = self._status, self._parent
        return (self._name, self._kind.value, context_values(self._context),
                None if parent is None else context_values(parent), self._start_time,
                self._end_time, self._attributes, self._dropped_attributes, (), 0, (), 0,
                status.status_code.value, status.description,
                flat_scope(self._instrumentation_scope))

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if error is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(error, escaped=True)
            if self._set_status:
                self.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        super().__exit__(kind, error, tb)


class RequestTracer(trace_api.Tracer):
    """A Tracer making RequestSpans from a provider's parts (see the module docstring)."""

    def __init__(self, provider: TracerProvider, processor: SpanProcessor, limits: SpanLimits,
                 name: str, parent_based: bool = False, always_on: bool = False) -> None:
        """`parent_based`: the provider's sampler is a ParentBased one with its default
        delegates, so a sampled local parent's child is sampled, with the parent's trace
        state and the given attributes (ALWAYS_ON's answer); the sampler is not asked.
        `always_on`: moreover its root sampler is ALWAYS_ON, so a root span is sampled too."""
        self.parent_based, self.always_on = parent_based, parent_based and always_on
        self.sampler, self.resource = provider.sampler, provider.resource
        self.ids: IdGenerator = provider.id_generator
        self.processor, self.limits = processor, limits
        self.scope = InstrumentationScope(name, "", None, None)  # as provider.get_tracer(name)
        self.sdk = provider.get_tracer(name)
        self._no_value_limit = limits.max_span_attribute_length is None

    def start_span(self, name: str, context: context_api.Context | None = None,
                   kind: SpanKind = SpanKind.INTERNAL, attributes: Any = None,
                   links: Sequence[trace_api.Link] | None = (), start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True
                   ) -> trace_api.Span:
        if links or not self._no_value_limit:
            return self.sdk.start_span(name, context, kind, attributes, links, start_time,
                                       record_exception, set_status_on_exception)
        parent = trace_api.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent, trace_id = None, self.ids.generate_trace_id()
            random_id = self.ids.is_trace_id_random()
        else:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        if parent is None and self.always_on:
            sampled, recording, state = True, True, None
        elif (self.parent_based and parent is not None and not parent.is_remote
                and parent.trace_flags.sampled):
            sampled, recording, state = True, True, parent.trace_state
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, ())
            sampled, recording = result.decision.is_sampled(), result.decision.is_recording()
            state, attributes = result.trace_state, result.attributes
        span_context = local_context(trace_id, self.ids.generate_span_id(),
                                     _FLAGS[sampled, bool(random_id)], state)
        if not recording:
            return trace_api.NonRecordingSpan(span_context)
        span = RequestSpan(self, name, span_context, parent, kind, record_exception,
                           set_status_on_exception)
        if attributes:
            span._take(attributes)
        span._start_time = start_time if start_time is not None else time_ns()
        self.processor.on_start(span, parent_context=context)
        return span

    def start_child(self, parent: RequestSpan, name: str, attributes: Mapping[str, Any],
                    start_time: int | None = None) -> trace_api.Span:
        """`start_span(name, attributes=attributes, start_time=start_time)` while `parent` is
        the current span: a sampled parent's child is made without looking the parent up
        again or going through the sampler's choices (the API's score span)."""
        parent_context = parent._context
        if not (self.parent_based and parent_context.trace_flags.sampled
                and self._no_value_limit):
            return self.start_span(name, attributes=attributes, start_time=start_time)
        span = RequestSpan(self, name, local_context(
            parent_context.trace_id, self.ids.generate_span_id(),
            _FLAGS[True, parent_context.trace_flags.random_trace_id],
            parent_context.trace_state), parent_context, SpanKind.INTERNAL, True, True)
        if attributes:
            span._take(attributes)
        span._start_time = start_time if start_time is not None else time_ns()
        self.processor.on_start(span, parent_context=None)
        return span

    @contextmanager
    def start_as_current_span(self, name: str, context: context_api.Context | None = None,
                              kind: SpanKind = SpanKind.INTERNAL, attributes: Any = None,
                              links: Sequence[trace_api.Link] | None = (),
                              start_time: int | None = None, record_exception: bool = True,
                              set_status_on_exception: bool = True, end_on_exit: bool = True
                              ) -> Iterator[trace_api.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time,
                               record_exception, set_status_on_exception)
        with trace_api.use_span(span, end_on_exit=end_on_exit, record_exception=record_exception,
                                set_status_on_exception=set_status_on_exception) as current:
            yield current
