"""Prometheus metrics of `churnctl stream score`, in its own registry, on /metrics.

  churn_stream_events_total{outcome}            scored | dead_letter
  churn_stream_errors_total{kind}               malformed | unknown_user | delivery | model
  churn_stream_consumer_lag{partition}          records between the committed offset and the end
  churn_stream_events_per_second                throughput over the last batches
  churn_stream_batch_seconds                    (histogram) time to score and commit a batch
  churn_stream_end_to_end_seconds               (histogram) produce time to score delivery
  churn_model_version                           version scoring (0: none)
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class StreamMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("churn_stream_events", "Events handled, by outcome.", ["outcome"],
                              registry=self.registry)
        self.errors = Counter("churn_stream_errors", "Errors, by kind.", ["kind"],
                              registry=self.registry)
        self.lag = Gauge("churn_stream_consumer_lag", "Records not yet scored, per partition.",
                         ["partition"], registry=self.registry)
        self.rate = Gauge("churn_stream_events_per_second", "Events scored per second lately.",
                          registry=self.registry)
        self.batch = Histogram("churn_stream_batch_seconds", "Time to score and commit a batch.",
                               buckets=BATCH_BUCKETS, registry=self.registry)
        self.latency = Histogram("churn_stream_end_to_end_seconds",
                                 "From the event's produce time to its score's delivery.",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.model_version = Gauge("churn_model_version", "Model version scoring (0: none).",
                                   registry=self.registry)
        self._window: deque[tuple[float, int]] = deque(maxlen=50)
        for outcome in ("scored", "dead_letter"):
            self.events.labels(outcome)
        for kind in ("malformed", "unknown_user", "delivery", "model"):
            self.errors.labels(kind)

    def batch_done(self, scored: int, dead: int, seconds: float) -> None:
        self.events.labels("scored").inc(scored)
        self.events.labels("dead_letter").inc(dead)
        self.batch.observe(seconds)
        now = time.monotonic()
        self._window.append((now, scored + dead))
        span = now - self._window[0][0]
        if span > 0:
            self.rate.set(sum(n for _, n in list(self._window)[1:]) / span)

    def serve(self, host: str, port: int) -> Any:
        """Serve /metrics on host:port in a daemon thread; returns the server (or None)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
