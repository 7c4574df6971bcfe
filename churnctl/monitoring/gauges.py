"""Gauges for the serving app's /metrics: the last drift check and the last successful retrain.

Light on purpose (json + pathlib only): /metrics calls these on every scrape. Keys are
Prometheus samples, `name{label="value"}`, so an exporter can write them as they are or split
the name from the labels.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from churnctl.workspace import Workspace

DRIFT_STATUS = {"ok": 0, "warn": 1, "fail": 2}
PSI = "churn_feature_psi"
STATUS = "churn_drift_status"
LAST_CHECK = "churn_drift_last_check_timestamp_seconds"
LAST_RETRAIN = "churn_last_successful_retrain_timestamp_seconds"
HELP = {
    PSI: "Population Stability Index of a feature in the last drift check.",
    STATUS: "Last drift check: 0 ok, 1 warn, 2 fail.",
    LAST_CHECK: "When the last drift check ran (Unix time).",
    LAST_RETRAIN: "When the last pipeline run that completed the train stage finished.",
}


def _label(value: str) -> str:
    # The Prometheus text format escapes backslash, double quote and newline in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no check yet, or a file from another tool: export nothing, never fail
    return data if isinstance(data, dict) else None


Sample = tuple[str, dict[str, str], float]  # (metric name, labels, value)


def _root(workspace: Workspace | Path) -> Path:
    return workspace.root if isinstance(workspace, Workspace) else Path(workspace)


def drift_samples(workspace: Workspace | Path) -> list[Sample]:
    """The last drift check as samples; empty when none ran (absent series, not a false 0)."""
    result = _read(_root(workspace) / "reports" / "drift" / "latest.json")
    if result is None or result.get("status") not in DRIFT_STATUS:
        return []
    samples: list[Sample] = [(STATUS, {}, float(DRIFT_STATUS[result["status"]]))]
    if isinstance(result.get("timestamp"), int | float):
        samples.append((LAST_CHECK, {}, float(result["timestamp"])))
    for feature in result.get("features", []):
        if isinstance(feature, dict) and isinstance(feature.get("psi"), int | float):
            samples.append((PSI, {"feature": str(feature["name"])}, float(feature["psi"])))
    return samples


def _key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def drift_gauges(workspace: Workspace | Path) -> dict[str, float]:
    """PSI per feature, the status (0 ok, 1 warn, 2 fail) and when the last check ran.

    Keys are samples as Prometheus writes them: `churn_feature_psi{feature="country"}`.
    """
    return {_key(name, labels): value for name, labels, value in drift_samples(workspace)}


def last_successful_retrain(workspace: Workspace | Path) -> float | None:
    """Unix time the newest successful pipeline run finished, None if there is none.

    A run that completed the train stage counts even when it was cached: the retraining job
    worked and confirmed the model is current; the alert is about the job being broken or
    not running. Records are named by start time, so the newest match is found first.
    """
    runs = _root(workspace) / ".churnctl" / "runs"
    if not runs.is_dir():
        return None
    for path in sorted(runs.glob("*.json"), reverse=True):
        record = _read(path)
        if not record or record.get("status") != "succeeded":
            continue
        if any(row.get("name") == "train" and row.get("status") in ("ran", "cached")
               for row in record.get("stages", [])):
            finished = record.get("finished_at") or record.get("started_at")
            try:
                return datetime.fromisoformat(str(finished)).timestamp()
            except ValueError:
                continue
    return None


def retrain_gauges(workspace: Workspace | Path) -> dict[str, float]:
    when = last_successful_retrain(workspace)
    return {} if when is None else {LAST_RETRAIN: when}


def prometheus_text(gauges: dict[str, float]) -> str:
    """The gauges in the Prometheus text exposition format, with HELP and TYPE lines."""
    lines: list[str] = []
    typed: set[str] = set()
    # Samples of one metric must be adjacent, after its TYPE line.
    for sample, value in sorted(gauges.items(), key=lambda item: item[0].split("{", 1)[0]):
        name = sample.split("{", 1)[0]
        if name not in typed:
            typed.add(name)
            lines.append(f"# HELP {name} {HELP.get(name, name)}")
            lines.append(f"# TYPE {name} gauge")
        lines.append(f"{sample} {value!r}")
    return "\n".join(lines) + ("\n" if lines else "")


class MonitoringCollector:
    """A prometheus_client collector of the drift and retrain gauges, read on each scrape.

    `registry.register(MonitoringCollector(workspace))` in the serving app exports them next
    to its own metrics. prometheus_client is imported only when Prometheus scrapes.
    """

    def __init__(self, workspace: Workspace | Path) -> None:
        self.workspace = workspace

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration; collect() reads the workspace

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        samples = drift_samples(self.workspace)
        when = last_successful_retrain(self.workspace)
        if when is not None:
            samples.append((LAST_RETRAIN, {}, when))
        families: dict[str, Any] = {}
        for name, labels, value in samples:
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, HELP[name],
                                                            labels=list(labels))
            family.add_metric(list(labels.values()), value)
        yield from families.values()
