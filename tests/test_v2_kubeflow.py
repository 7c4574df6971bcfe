"""`churnctl pipeline compile --target kubeflow`, checked with the kfp SDK's own loader.

kfp 2 pins kubernetes<31, while `churnctl deploy` needs the kubernetes client 37, so kfp
cannot share the project's venv: this test builds (once, then reuses) a venv of its own
with kfp and churnctl's light dependencies, installs this checkout into it without deps,
and compiles and loads the pipeline there. CHURNCTL_KFP_VENV picks another location.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CHURNCTL_KFP_VENV",
                           Path.home() / ".cache" / "churnctl" / "kfp-venv"))
REQUIREMENTS = ["kfp>=2.7,<3", "pydantic>=2.6", "pydantic-settings>=2.2", "pyyaml>=6",
                "typer>=0.12", "rich>=13"]
IMAGE = "registry.example/churnctl-pipeline:test"
SERVER = "http://mlflow.kubeflow.svc:5000"  # the shared tracking server the pods reach

CHECK = """
import json, os, sys
import typer
from churnctl.stages import STAGE_INPUTS

# A test may change the stage declaration: the compiled graph must follow it.
STAGE_INPUTS.update({k: tuple(v) for k, v in
                     json.loads(os.environ.get("CHURNCTL_TEST_STAGE_INPUTS", "{}")).items()})
from typer.testing import CliRunner
from churnctl.cli import pipeline
from churnctl.cli.main import ChurnctlGroup  # one-line errors, exit 2 for bad input

app = typer.Typer(cls=ChurnctlGroup)
pipeline.register(app)

@app.callback()
def _root() -> None:
    pass

out, image, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
result = CliRunner().invoke(app, ["pipeline", "compile", "--target", "kubeflow", "-o", out,
                                  "--profile", "v2", "--set", "ingest.users=400",
                                  "--image", image, "--json", *extra])
if result.exit_code:
    print(json.dumps({"exit_code": result.exit_code, "stderr": result.stderr,
                      "exception": repr(result.exception)}))
    sys.exit(3)

from google.protobuf import json_format
from kfp import components

loaded = components.load_component_from_file(out)  # kfp's own loader
spec = loaded.pipeline_spec
executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
print(json.dumps({
    "cli": json.loads(result.stdout),
    "name": spec.pipeline_info.name,
    "inputs": list(loaded.component_spec.inputs),
    "defaults": json_format.MessageToDict(spec.root.input_definitions)["parameters"],
    "tasks": {name: {"deps": sorted(task.dependent_tasks),
                     "artifacts": {k: v.task_output_artifact.producer_task
                                   for k, v in task.inputs.artifacts.items()},
                     "params": {k: v.component_input_parameter
                                for k, v in task.inputs.parameters.items()},
                     "executor": spec.components[task.component_ref.name].executor_label,
                     "outputs": {k: v.artifact_type.schema_title for k, v in
                                 spec.components[task.component_ref.name]
                                 .output_definitions.artifacts.items()}}
              for name, task in spec.root.dag.tasks.items()},
    "executors": {name: e["container"] for name, e in executors.items()},
}))
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def kfp_python() -> Path:
    """A Python with kfp and this checkout of churnctl (built on first use, then reused)."""
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers may all get here: one builds, the others wait for it.
    with (VENV.parent / f".{VENV.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = VENV / "kfp-installed"
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
                           check=True, timeout=1200)
            ready.touch()
        stamp = VENV / "churnctl-checkout.txt"
        # Entry points live in the install's metadata: reinstall when pyproject.toml changes.
        wanted = f"{REPO}\n{_digest(REPO / 'pyproject.toml')}\n"
        if not stamp.exists() or stamp.read_text() != wanted:
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e",
                            str(REPO)], check=True, timeout=600)
            stamp.write_text(wanted)
    return python


def _compile(kfp_python: Path, out: Path, *extra: str,
             stage_inputs: dict[str, list[str]] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CHURNCTL_TEST_STAGE_INPUTS"] = json.dumps(stage_inputs or {})
    return subprocess.run([str(kfp_python), "-c", CHECK, str(out), IMAGE, *extra],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


@pytest.fixture(scope="module")
def compiled(kfp_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("kfp") / "churn-pipeline.yaml"
    done = _compile(kfp_python, out, "--set", f"tracking.tracking_uri={SERVER}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    summary["path"] = out
    return summary


def test_one_step_per_stage_in_pipeline_order(compiled: dict[str, Any]) -> None:
    tasks = compiled["tasks"]
    assert compiled["name"] == "churnctl-v2"
    assert set(tasks) == {"ingest", "validate", "features", "train"}
    assert tasks["ingest"]["deps"] == []
    assert tasks["validate"]["deps"] == ["ingest"]
    assert tasks["features"]["deps"] == ["ingest", "validate"]
    assert tasks["train"]["deps"] == ["features"]
    assert compiled["cli"]["stages"] == ["ingest", "validate", "features", "train"]


def test_the_graph_is_the_one_stage_declaration(kfp_python: Path, tmp_path: Path) -> None:
    """Kubeflow reads churnctl.stages.STAGE_INPUTS, as the runner and DVC do: declare train
    to read validate's output too, and the compiled train step gets that artifact."""
    out = tmp_path / "churn-pipeline.yaml"
    done = _compile(kfp_python, out, "--set", f"tracking.tracking_uri={SERVER}",
                    stage_inputs={"train": ["features", "validate"]})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    tasks = json.loads(done.stdout.strip().splitlines()[-1])["tasks"]
    assert tasks["train"]["deps"] == ["features", "validate"]
    assert tasks["train"]["artifacts"] == {"features": "features", "validate": "validate"}


def test_artifacts_flow_between_steps(compiled: dict[str, Any]) -> None:
    tasks = compiled["tasks"]
    assert tasks["features"]["artifacts"] == {"ingest": "ingest", "validate": "validate"}
    assert tasks["train"]["artifacts"] == {"features": "features"}
    assert tasks["features"]["outputs"] == {"data": "system.Dataset"}
    assert tasks["train"]["outputs"] == {"data": "system.Model"}


def test_every_step_runs_the_churnctl_image_stage_command(compiled: dict[str, Any]) -> None:
    for stage, task in compiled["tasks"].items():
        container = compiled["executors"][task["executor"]]
        assert container["image"] == IMAGE
        assert container["command"] == ["churnctl", "stage", "run", stage]
        assert "--params-json" in container["args"] and "--out" in container["args"]
        assert task["params"] == {"params": f"{stage}_params"}
        # Every step registers into the one shared registry, not into its pod's own.
        assert {"name": "MLFLOW_TRACKING_URI", "value": SERVER} in container["env"]


def test_stage_parameters_default_to_the_profile(compiled: dict[str, Any]) -> None:
    assert sorted(compiled["inputs"]) == ["features_params", "ingest_params", "train_params",
                                          "validate_params"]
    defaults = {name: spec["defaultValue"] for name, spec in compiled["defaults"].items()}
    assert defaults["ingest_params"]["backend"] == "shell"
    assert defaults["ingest_params"]["users"] == 400  # the --set override
    assert defaults["train_params"]["promotion_margin"] == 0.0
    assert defaults["features_params"]["windows"] == [7, 14, 30]
    assert compiled["path"].read_text().startswith("# PIPELINE DEFINITION")


@pytest.mark.parametrize("extra", [(), ("--set", "tracking.tracking_uri=sqlite:///m.db"),
                                   ("--set", "tracking.tracking_uri=mlruns")],
                         ids=["profile-default-sqlite", "sqlite", "directory"])
def test_a_registry_local_to_one_pod_is_refused(kfp_python: Path, tmp_path: Path,
                                                extra: tuple[str, ...]) -> None:
    """Each step runs in its own pod: a local store there is thrown away with the pod, and
    every model would be "first model: promoted". Compiling says so, in one line."""
    out = tmp_path / "churn-pipeline.yaml"
    done = _compile(kfp_python, out, *extra)
    assert done.returncode == 3, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit_code"] == 2, result
    message = result["stderr"].strip()
    assert len(message.splitlines()) == 1 and message.startswith("error:"), message
    assert "local to this machine" in message and "--set tracking.tracking_uri=http" in message
    assert "Traceback" not in message
    assert not out.exists()
