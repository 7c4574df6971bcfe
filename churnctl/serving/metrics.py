"""Prometheus metrics of one app, in its own CollectorRegistry (no global state).

Names (for alert rules and dashboards):
  churn_http_requests_total{handler, method, status}
  churn_http_request_duration_seconds{handler}  (histogram)
  churn_predictions_total{model_version}         customers scored
  churn_prediction_probability                    (histogram of churn probabilities)
  churn_model_version                             version being served (0: none)
  churn_model_loaded_timestamp_seconds            when it was loaded
  churn_model_reloads_total{result}               ok | error
plus the drift and retrain gauges of churnctl.monitoring.gauges (churn_feature_psi, ...).

With several workers (`serve --workers N`), the server sets PROMETHEUS_MULTIPROC_DIR before
they start: every worker writes its samples there and any worker's /metrics reads them all, so
counters and histograms add up across workers and the model gauges show the highest live value.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from churnctl.serving.options import MULTIPROCESS_ENV
from churnctl.workspace import Workspace

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
BULK_OBSERVE = 32  # from this many probabilities on, the histogram is updated per bucket
# Label values for paths: anything else is "other", so random URLs cannot grow the series.
HANDLERS = frozenset({"/predict", "/predict/batch", "/live", "/ready", "/metrics", "/model",
                      "/openapi.json", "/docs", "/redoc"})


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Our multiprocess mode is the one `serve --workers N` turns on (MULTIPROCESS_ENV): a
        # PROMETHEUS_MULTIPROC_DIR some library leaves in the environment (Feast sets one at
        # import) must not make /metrics read other processes' files.
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV)
        self._scraped = self.registry
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            self._scraped = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scraped, self.multiprocess_dir)
            atexit.register(multiprocess.mark_process_dead, os.getpid(), self.multiprocess_dir)
        if workspace is not None:
            # Drift and retrain gauges (churnctl.monitoring), read from the workspace per scrape.
            from churnctl.monitoring.gauges import MonitoringCollector

            self._scraped.register(MonitoringCollector(workspace))
        self.requests = Counter("churn_http_requests", "HTTP requests answered.",
                                ["handler", "method", "status"], registry=self.registry)
        self.latency = Histogram("churn_http_request_duration_seconds",
                                 "Time to answer a request.", ["handler"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("churn_predictions", "Customers scored.", ["model_version"],
                                   registry=self.registry)
        self.probability = Histogram("churn_prediction_probability",
                                     "Churn probabilities returned.", buckets=PROBABILITY_BUCKETS,
                                     registry=self.registry)
        self.model_version = Gauge("churn_model_version", "Model version being served (0: none).",
                                   registry=self.registry, multiprocess_mode="livemax")
        self.model_loaded = Gauge("churn_model_loaded_timestamp_seconds",
                                  "When the served model was loaded.", registry=self.registry,
                                  multiprocess_mode="livemax")
        self.reloads = Counter("churn_model_reloads", "Model loads by result.", ["result"],
                               registry=self.registry)
        self._children: dict[tuple[str, ...], Any] = {}  # labels() is slow: cache the children

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        handler = path if path in HANDLERS else "other"
        self._child(self.requests, handler, method, str(status)).inc()
        self._child(self.latency, handler).observe(seconds)

    def observe_predictions(self, version: int, probabilities: list[float]) -> None:
        self._child(self.predictions, str(version)).inc(len(probabilities))
        if len(probabilities) < BULK_OBSERVE or not self._bulk_observe(probabilities):
            for value in probabilities:
                self.probability.observe(value)

    def _bulk_observe(self, values: list[float]) -> bool:
        """Many observations at once: one increment per bucket instead of one per value (a
        1,000-row batch: 1 ms -> 0.05 ms). Uses the histogram's value cells, so it checks they
        look as expected and otherwise says False (observe one by one)."""
        import numpy as np

        histogram = self.probability
        buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
        bounds = getattr(histogram, "_upper_bounds", None)
        if buckets is None or total is None or bounds is None or len(buckets) != len(bounds):
            return False
        array = np.asarray(values, dtype=np.float64)
        # observe() counts a value in the first bucket whose upper bound is >= it.
        counts = np.bincount(np.searchsorted(bounds, array, side="left"),
                             minlength=len(bounds))
        for bucket, count in zip(buckets, counts.tolist(), strict=False):
            if count:
                bucket.inc(count)
        total.inc(float(array.sum()))
        return True

    def model_swapped(self, version: int) -> None:
        self.model_version.set(version)
        self.model_loaded.set(time.time())
        self._child(self.reloads, "ok").inc()

    def reload_failed(self) -> None:
        self._child(self.reloads, "error").inc()

    def render(self) -> bytes:
        return generate_latest(self._scraped)


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware) timing every HTTP request."""

    def __init__(self, app: Any, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.observe_request(
                scope["path"], scope["method"], status, time.perf_counter() - start)
