"""churnctl's own evaluator of AnalysisTemplate metrics against a Prometheus server.

The same PromQL as the template (args substituted as the controller does) and the same
semantics as Argo Rollouts' analysis controller (analysis/analysis.go, metricproviders/
prometheus, utils/evaluate):
- each measurement queries Prometheus; a vector gives `result` = list of sample values, a
  scalar a float; successCondition / failureCondition decide Successful, Failed or
  Inconclusive; a query or condition error is an Error measurement;
- a metric takes `count` measurements `interval` apart (no interval: one); it fails when
  failed > failureLimit (default 0), is inconclusive when inconclusive > inconclusiveLimit,
  errors when consecutive errors > consecutiveErrorLimit (default 4), else succeeds when the
  count is reached;
- the run's phase is the worst metric phase, and it ends as soon as a metric fails or errors.
It lets `churnctl` check a canary's analysis without a cluster, and is what the tests use to
check the templates against a real Prometheus.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from churnctl.deploy.rollouts.conditions import ConditionError, measurement_phase

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
_WORSE = ["Successful", "Inconclusive", "Error", "Failed"]  # analysisutil.IsWorse order
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration.strip())
    if not match:
        raise ValueError(f"{duration!r} is not a duration like 30s or 5m")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Measurement:
    phase: str
    value: str = ""
    message: str = ""


@dataclass
class MetricResult:
    name: str
    phase: str = "Running"
    measurements: list[Measurement] = field(default_factory=list)
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0

    def record(self, measurement: Measurement) -> None:
        """analysis.go runMeasurements: errors do not count towards `count`."""
        self.measurements.append(measurement)
        if measurement.phase == "Error":
            self.error += 1
            self.consecutive_error += 1
            return
        self.count += 1
        self.consecutive_error = 0
        if measurement.phase == "Successful":
            self.successful += 1
        elif measurement.phase == "Failed":
            self.failed += 1
        else:
            self.inconclusive += 1


def _limit(metric: dict[str, Any], key: str, default: int) -> int:
    value = metric.get(key)
    return default if value is None else int(value)


def effective_count(metric: dict[str, Any]) -> int | None:
    """Metric.EffectiveCount: no count and no interval means one measurement."""
    count = int(metric.get("count") or 0)
    if count == 0:
        return 1 if not metric.get("interval") else None
    return count


def assess(metric: dict[str, Any], result: MetricResult) -> str:
    """assessMetricStatus without consecutiveSuccessLimit: Running until decided."""
    if not result.measurements:
        return "Pending"
    phase = ""
    failure_limit = _limit(metric, "failureLimit", 0)
    if failure_limit >= 0 and result.failed > failure_limit:
        phase = "Failed"
    if result.inconclusive > _limit(metric, "inconclusiveLimit", 0):
        phase = "Inconclusive"
    if result.consecutive_error > _limit(metric, "consecutiveErrorLimit",
                                         DEFAULT_CONSECUTIVE_ERROR_LIMIT):
        phase = "Error"
    if phase:
        return phase
    count = effective_count(metric)
    if count is not None and result.count >= count:
        return "Successful"
    return "Running"


def query_prometheus(address: str, query: str, timeout: float = 10.0) -> Any:
    """`result` as Argo's prometheus provider builds it: a float or a list of floats."""
    if not address.startswith(("http://", "https://")):
        raise ConditionError(f"Prometheus address {address!r} is not an http(s) URL")
    body = urllib.parse.urlencode({"query": query}).encode()
    request = urllib.request.Request(
        f"{address.rstrip('/')}/api/v1/query", data=body, method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        # http(s) only (checked above): no file:// or custom schemes.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        raise ConditionError(f"Prometheus at {address} refused the query: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConditionError(f"Prometheus at {address} unreachable: {exc}") from None
    data = answer.get("data") or {}
    kind, values = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return float(values[1])
    if kind == "vector":
        return [float(sample["value"][1]) for sample in values]
    if kind == "matrix":
        return [float(v[1]) for series in values for v in series["values"]]
    raise ConditionError(f"Prometheus metric type not supported: {kind}")


def _value_text(result: Any) -> str:
    if isinstance(result, list):
        return "[" + ",".join(f"{v:g}" for v in result) + "]"
    return f"{result:g}"


def measure(metric: dict[str, Any], query: Callable[[str, str], Any]) -> Measurement:
    provider = metric["provider"]["prometheus"]
    try:
        result = query(provider["address"], provider["query"])
        phase = measurement_phase(result, metric.get("successCondition"),
                                  metric.get("failureCondition"))
    except ConditionError as exc:
        return Measurement("Error", message=str(exc))
    return Measurement(phase, value=_value_text(result))


@dataclass
class RunResult:
    phase: str
    metrics: list[MetricResult]

    @property
    def message(self) -> str:
        bad = [m for m in self.metrics if m.phase not in ("Successful", "Running", "Pending")]
        return "; ".join(f"metric {m.name} {m.phase} (values "
                         f"{', '.join(x.value or x.message for x in m.measurements)})" for m in bad)


def run_analysis(
    metrics: list[dict[str, Any]],
    *,
    query: Callable[[str, str], Any] = query_prometheus,
    address: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Measure every metric on its own interval until each is decided or one fails."""
    if address is not None:  # point the templates' provider at another Prometheus
        metrics = [{**m, "provider": {"prometheus": {**m["provider"]["prometheus"],
                                                     "address": address}}} for m in metrics]
    results = {m["name"]: MetricResult(m["name"]) for m in metrics}
    due = {m["name"]: clock() + (seconds(m["initialDelay"]) if m.get("initialDelay") else 0)
           for m in metrics}
    while True:
        now = clock()
        for metric in metrics:
            result = results[metric["name"]]
            if result.phase in _WORSE or now < due[metric["name"]]:
                continue
            result.record(measure(metric, query))
            result.phase = assess(metric, result)
            interval = seconds(metric["interval"]) if metric.get("interval") else 0.0
            due[metric["name"]] = clock() + interval
        phases = [r.phase for r in results.values()]
        done = [p for p in phases if p in _WORSE]
        worst = max(done, key=_WORSE.index) if done else None
        if len(done) == len(phases) or worst in ("Failed", "Error"):
            return RunResult(worst or "Successful", list(results.values()))
        pending = [due[n] for n, r in results.items() if r.phase not in _WORSE]
        sleep(max(0.0, min(pending) - clock()))
