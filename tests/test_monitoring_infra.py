"""infra/monitoring and the drift CronJob: real promtool, dashboard structure, manifests."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "infra" / "monitoring"
RULES = MONITORING / "rules" / "churnctl.rules.yml"
RULE_TESTS = sorted((MONITORING / "rules").glob("*.test.yml"))
DASHBOARD = MONITORING / "grafana" / "churnctl-dashboard.json"
CRONJOB = ROOT / "infra" / "k8s" / "base" / "cronjob-drift.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed: apt-get install -y prometheus")
# Grafana's variables are not PromQL; give them values before promtool parses a query.
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
METRIC = re.compile(r"\b(churn_[a-z_]+|up)\b(?=\s*[{\[)])")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False,
                          cwd=cwd, timeout=120)


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


@needs_promtool
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_prometheus_config_is_valid(config: str) -> None:
    done = promtool("check", "config", str(MONITORING / config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "churnctl.rules.yml" in done.stdout  # the rules file is found and checked too


@needs_promtool
def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_the_issue_s_alerts_exist_and_are_unit_tested() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    wanted = {"ChurnApiHighErrorRate", "ChurnApiHighLatencyP95", "ChurnFeatureDriftFailing",
              "ChurnNoSuccessfulRetrain"}
    assert wanted <= set(alerts)
    tested = {t["alertname"] for f in RULE_TESTS for case in yaml.safe_load(f.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert set(alerts) <= tested, f"alerts without a unit test: {set(alerts) - tested}"
    for alert in alerts.values():
        assert alert["labels"]["severity"] in ("page", "warning")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] == "churnctl-overview" and board["title"]
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and all(refs) and len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"])
    titles = " | ".join(p["title"].lower() for p in panels())
    for topic in ("traffic", "latency", "error rate", "prediction distribution",
                  "psi per feature", "model version"):
        assert topic in titles, f"no panel about {topic}"


@needs_promtool
def test_dashboard_and_rule_queries_parse_as_promql(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = []
    for number, expr in enumerate(queries):
        for macro, value in GRAFANA_MACROS.items():
            expr = expr.replace(macro, value)
        assert "$__" not in expr, f"unknown Grafana macro in {expr}"
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    throwaway = tmp_path / "dashboard.rules.yml"
    throwaway.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(throwaway))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(queries)} rules found" in done.stdout


def exported_metric_names() -> set[str]:
    """Sample names the serving /metrics really exports, plus the monitoring gauges."""
    from churnctl.monitoring import gauges

    names = {gauges.PSI, gauges.STATUS, gauges.LAST_CHECK, gauges.LAST_RETRAIN, "up"}
    if importlib.util.find_spec("prometheus_client") is None:
        pytest.skip("prometheus_client not installed (pip install 'churnctl[serve]')")
    from churnctl.serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    metrics.observe_request("/predict", "POST", 200, 0.01)
    metrics.observe_predictions(1, [0.3])
    metrics.model_swapped(1)
    for family in metrics.registry.collect():
        names.update(sample.name for sample in family.samples)
    return names


def test_rules_and_dashboard_use_only_exported_metric_names() -> None:
    exported = exported_metric_names()
    used = {m for expr in [*rule_exprs(), *dashboard_queries()] for m in METRIC.findall(expr)}
    recording = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"]
                 for r in g["rules"] if "record" in r}
    assert used, "no metric names found"
    assert used - exported - recording == set(), "names no exporter produces"
    for name in ("churn_http_requests_total", "churn_http_request_duration_seconds_bucket",
                 "churn_predictions_total", "churn_prediction_probability_bucket",
                 "churn_model_version", "churn_feature_psi", "churn_drift_status",
                 "churn_last_successful_retrain_timestamp_seconds"):
        assert name in used, f"{name} is neither alerted on nor shown"


def sdk_available() -> bool:
    return importlib.util.find_spec("grafana_foundation_sdk") is not None


def missing_after_round_trip(original: Any, loaded: Any, path: str = "") -> list[str]:
    """Keys and values of `original` that Grafana's schema types did not keep."""
    if isinstance(original, dict):
        if not isinstance(loaded, dict):
            return [path]
        return [m for key, value in original.items()
                for m in (missing_after_round_trip(value, loaded[key], f"{path}.{key}")
                          if key in loaded else [f"{path}.{key}"])]
    if isinstance(original, list):
        if not isinstance(loaded, list) or len(original) != len(loaded):
            return [path]
        return [m for i, (a, b) in enumerate(zip(original, loaded, strict=True))
                for m in missing_after_round_trip(a, b, f"{path}[{i}]")]
    return [] if original == loaded else [path]


@pytest.mark.skipif(not sdk_available(), reason="grafana-foundation-sdk not installed "
                    "(pip install grafana-foundation-sdk)")
def test_dashboard_loads_into_grafana_schema_types_without_losing_anything() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    original = dashboard()
    loaded = json.loads(JSONEncoder().encode(Dashboard.from_json(original)))
    # A misspelled or unknown key would be dropped by the typed model and show up here.
    assert missing_after_round_trip(original, loaded) == []


@pytest.mark.skipif(not sdk_available(), reason="grafana-foundation-sdk not installed "
                    "(pip install grafana-foundation-sdk)")
def test_checked_in_dashboard_matches_its_builder() -> None:
    done = subprocess.run([sys.executable, str(MONITORING / "grafana" / "build_dashboard.py"),
                           "--check"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr


def test_drift_cronjob_runs_the_check_with_retraining() -> None:
    from churnctl.deploy.validate import validate_manifests

    job = yaml.safe_load(CRONJOB.read_text())
    report = validate_manifests([job])
    assert report.ok, report.errors
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert re.fullmatch(r"\d+ \d+ \* \* \*", spec["schedule"])  # once a day
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["monitor", "drift", "--retrain"]
    assert container["image"] == "churnctl-pipeline"  # kustomize `images:` pins it
    rules = spec["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "drift", "operator": "In",
                                                 "values": [2]}} in rules
    volumes = spec["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes
              if "persistentVolumeClaim" in v}
    assert claims == {"churnctl-workspace"}  # the API reads latest.json from the same volume


def test_base_with_the_drift_cronjob_and_metrics_service_renders_and_validates(
        tmp_path: Path) -> None:
    from churnctl.deploy.render import kustomize
    from churnctl.deploy.validate import validate_manifests

    base = ROOT / "infra" / "k8s" / "base"
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": [os.path.relpath(base, tmp_path)], "namespace": "churn"}))
    docs = [d for d in yaml.safe_load_all(kustomize(tmp_path)) if d]
    report = validate_manifests(docs)
    assert report.ok, report.errors
    found = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("CronJob", "churnctl-drift"), ("CronJob", "churnctl-retrain"),
            ("Service", "churnctl-api-metrics")} <= found
    metrics = next(d for d in docs if d["metadata"]["name"] == "churnctl-api-metrics")
    api = next(d for d in docs if d["kind"] == "Deployment")
    assert metrics["spec"]["clusterIP"] == "None"  # one DNS record per pod
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in metrics["spec"]["selector"].items())
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == metrics["spec"]["ports"][0]["port"]


def test_podmonitor_selects_the_api_pods_under_the_rules_job_name() -> None:
    monitor = yaml.safe_load((MONITORING / "k8s" / "podmonitor.yaml").read_text())
    deployment = yaml.safe_load((ROOT / "infra/k8s/base/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] in {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert endpoint["path"] == pod["metadata"]["annotations"]["prometheus.io/path"]
    assert {"targetLabel": "job", "replacement": "churnctl-api"} in endpoint["relabelings"]
