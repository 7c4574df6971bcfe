"""The canary analysis for real: a real Prometheus scrapes real `churnctl serve` processes
(the stable one and canaries) under a few seconds of load, and churnctl's evaluator runs the
AnalysisTemplates' PromQL and conditions against it.

Each process carries the `rollouts_pod_template_hash` label Prometheus gets from the pod in a
cluster. Canaries: `healthy` serves the production model (pinned with --model-version),
`shifted` a deliberately broken model (log-odds +3: the same ranking, far higher scores),
`failing` a version whose file fails its checksum (every /predict answers 503).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from churnctl.backends.deploy_argo_rollouts import CanaryAnalysisOptions
from churnctl.cli.main import app
from churnctl.deploy.rollouts.analysis import analysis_templates, resolve_args
from churnctl.deploy.rollouts.evaluate import run_analysis
from tests.kube_emulator import running_emulator
from tests.model_variants import register_corrupt, register_shifted
from tests.prometheus_service import PROMETHEUS, free_port, running_prometheus
from tests.rollouts_cluster import serve_argo_rollouts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="apt-get install -y prometheus"),
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]
ROOT = Path(__file__).resolve().parents[1]
CANARIES = {"healthy": 1, "shifted": 2, "failing": 3}
ANALYSIS = {"interval": "1s", "count": 3, "failure_limit": 0, "window": "10s",
            "max_p95_latency_seconds": 2.0, "max_error_ratio": 0.01, "max_score_psi": 0.2,
            "max_high_risk_shift": 0.05, "high_risk_threshold": "0.5"}


def add_versions(workspace: Path) -> None:
    """v2: production's model with its log-odds shifted by +3; v3: a corrupted file."""
    assert register_shifted(workspace) == 2
    assert register_corrupt(workspace) == 3


class Api:
    """`churnctl serve` in a child process, stopped by its PID."""

    def __init__(self, workspace: Path, log: Path, model_version: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pinned = ["--model-version", str(model_version)] if model_version else []
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "churnctl", "serve", "--port", str(self.port),
             "--workspace", str(workspace), "--profile", "v1", *pinned],
            env={**os.environ, "CHURNCTL_PROFILE": "v1"}, stdout=self.log,
            stderr=subprocess.STDOUT)

    def wait(self, path: str, timeout: float = 120) -> None:
        """Until `path` answers 200 (/ready: the model is loaded; /live: listening)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "server exited; see its log"
            try:
                if httpx.get(f"{self.url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server: no 200 from {path} in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def load(urls: list[str], stop: threading.Event, users: int = 300) -> None:
    """The same customers, in the same order, to every server."""
    with httpx.Client(timeout=5) as client:
        user = 0
        while not stop.is_set():
            user = user % users + 1
            for url in urls:
                with contextlib.suppress(httpx.HTTPError):
                    client.post(f"{url}/predict", json={"user_id": user})
            time.sleep(0.005)


@pytest.fixture(scope="module")
def prometheus(small_run: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[str]:
    import shutil

    tmp = tmp_path_factory.mktemp("canary-analysis")
    workspace = tmp / "ws"
    shutil.copytree(small_run[0], workspace)
    add_versions(workspace)
    apis = {"stable": Api(workspace, tmp / "stable.log", None)}
    apis |= {name: Api(workspace, tmp / f"{name}.log", v) for name, v in CANARIES.items()}
    stop = threading.Event()
    try:
        for name, api in apis.items():
            api.wait("/live" if name == "failing" else "/ready")
        # The broken file is refused at load: that canary stays unready, /predict answers 503.
        assert httpx.post(f"{apis['failing'].url}/predict", json={"user_id": 1}).status_code == 503
        targets = [(f"127.0.0.1:{api.port}", {"rollouts_pod_template_hash": name})
                   for name, api in apis.items()]
        with running_prometheus(tmp, targets) as url:
            loader = threading.Thread(target=load, args=([a.url for a in apis.values()], stop),
                                      daemon=True)
            loader.start()
            time.sleep(6)  # a few scrapes of traffic before the first measurement
            yield url
            stop.set()
            loader.join(10)
    finally:
        stop.set()
        for api in apis.values():
            api.stop()


def analyze(prometheus: str, canary: str) -> Any:
    options = CanaryAnalysisOptions(prometheus_address=prometheus, **ANALYSIS)
    metrics = []
    for template in analysis_templates(options):
        declared = {a["name"] for a in template["spec"]["args"]}
        args = {k: v for k, v in {"canary-hash": canary, "stable-hash": "stable"}.items()
                if k in declared}
        metrics += resolve_args(template, args)
    result = run_analysis(metrics)
    # The measured values, for docs/v4.md (pytest -s shows them).
    print(canary, result.phase, {m.name: [x.value or x.message for x in m.measurements]
                                 for m in result.metrics})
    return result


def test_healthy_canary_passes(prometheus: str) -> None:
    result = analyze(prometheus, "healthy")
    assert result.phase == "Successful", result.message
    assert all(m.count == 3 for m in result.metrics)
    psi = next(m for m in result.metrics if m.name == "score-psi")
    assert float(psi.measurements[-1].value.strip("[]")) < 0.05


def test_shifted_scores_fail_the_model_metrics_not_the_http_ones(prometheus: str) -> None:
    result = analyze(prometheus, "shifted")
    phases = {m.name: m.phase for m in result.metrics}
    assert result.phase == "Failed", phases
    assert "Failed" in (phases["score-psi"], phases["high-risk-shift"])
    assert phases["error-ratio"] != "Failed"


def test_5xx_canary_fails_the_error_ratio(prometheus: str) -> None:
    result = analyze(prometheus, "failing")
    phases = {m.name: m.phase for m in result.metrics}
    assert result.phase == "Failed" and phases["error-ratio"] == "Failed", phases
    ratio = next(m for m in result.metrics if m.name == "error-ratio").measurements[0].value
    assert float(ratio.strip("[]")) > 0.5


@pytest.mark.emulator
def test_a_failing_canary_is_aborted_by_deploy_analyze(
    prometheus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    profile = tmp_path / "canary.yaml"
    profile.write_text(yaml.safe_dump({"name": "canary", "extends": "v4", "stages": {
        "deploy": {"backend": "argo-rollouts", "options": {"analysis": ANALYSIS}}}}))
    with running_emulator(tmp_path) as emulator:
        serve_argo_rollouts(emulator)
        monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig))
        runner = CliRunner()
        common = ["--profile", str(profile), "--workspace", str(tmp_path)]
        assert runner.invoke(app, ["deploy", *common]).exit_code == 0
        rollout = emulator.stored("rollouts", "churn", "churnctl-api")
        rollout["status"] = {"phase": "Paused", "stableRS": "stable", "currentPodHash": "shifted",
                             "currentStepIndex": 1}
        emulator.replace("rollouts", "churn", "churnctl-api", rollout)

        result = runner.invoke(app, ["deploy", "analyze", *common, "--prometheus", prometheus,
                                     "--abort-on-failure", "--json"])
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert report["phase"] == "Failed" and report["aborted"] is True
        assert emulator.stored("rollouts", "churn", "churnctl-api")["status"]["abort"] is True
