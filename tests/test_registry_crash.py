"""A real SIGKILL at the registry's dangerous points, then a rerun, leaves one whole and
consistent registry with the same metrics; two runs at once in one workspace do not race."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from churnctl.domain.model_registry import ModelRegistry
from churnctl.workspace import Workspace

pytestmark = pytest.mark.slow
SMALL = ["--set", "ingest.users=400", "--set", "ingest.days=100"]
LR_ONLY = ["--set", "train.algorithms=[logistic_regression]"]
HGB_ONLY = ["--set", "train.algorithms=[hist_gradient_boosting]"]

# Runs the real CLI with one function wrapped so that the process SIGKILLs itself at a chosen
# point: no crash hook exists in churnctl for this.
BOOT = r"""
import os, shutil, signal, sys
point = sys.argv.pop(1)
import churnctl.domain.model_registry as registry
import churnctl.runner as runner

def kill_when(real, condition):
    def wrapped(*args, **kwargs):
        if condition(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapped

if point == "index-write":  # the version directory committed, the index not yet written
    registry.write_json = kill_when(registry.write_json,
                                    lambda path, data: path.name == "registry.json")
elif point == "model-copy":  # half-way into copying the model into the new version
    real_copy = shutil.copy2
    def copy_then_die(src, dst, *a, **k):
        if ".v" in str(dst) and str(dst).endswith(".skops"):
            with open(src, "rb") as source, open(dst, "wb") as target:
                target.write(source.read(100))
            os.kill(os.getpid(), signal.SIGKILL)
        return real_copy(src, dst, *a, **k)
    registry.shutil.copy2 = copy_then_die
elif point == "train-commit":  # the train stage wrote its files, its manifest is not written
    runner.write_json = kill_when(runner.write_json,
                                  lambda path, data: path.name == "manifest.json"
                                  and data.get("stage") == "train")
from churnctl.cli.main import main
sys.argv = ["churnctl", *sys.argv[1:]]
main()
"""


def _run(workspace: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", BOOT, kill_at or "none", "run", "--json",
               "--workspace", str(workspace), *SMALL, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def assert_consistent(workspace: Path) -> ModelRegistry:
    registry = ModelRegistry(Workspace(workspace).registry)
    versions = registry.versions()
    numbers = [v.version for v in versions]
    assert numbers == sorted(set(numbers))
    on_disk = sorted(int(p.name[1:]) for p in registry.root.glob("v*") if p.is_dir())
    assert on_disk == numbers, "a version directory without an index row, or the reverse"
    assert len({v.artifact for v in versions}) == len(versions)
    for entry in versions:
        registry.load_model(entry.version)  # the recorded sha256 matches the file
    production = [v for v in versions if v.status == "production"]
    assert len(production) == 1 and registry.production() == production[0]
    assert not list(registry.root.glob(".*.tmp")), "a temp left after a locked run"
    return registry


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Metrics of the two runs (LR first, then HGB with --promote) with nothing killed."""
    workspace = tmp_path_factory.mktemp("reference")
    first = _run(workspace, *LR_ONLY)
    second = _run(workspace, *HGB_ONLY, "--promote")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert_consistent(workspace)
    return {"first": json.loads(first.stdout), "second": json.loads(second.stdout)}


@pytest.mark.parametrize("kill_at", ["model-copy", "index-write", "train-commit"])
def test_sigkill_during_promotion_then_rerun_is_whole(reference: dict, tmp_path: Path,
                                                      kill_at: str) -> None:
    first = _run(tmp_path, *LR_ONLY)
    assert first.returncode == 0, first.stderr
    killed = _run(tmp_path, *HGB_ONLY, "--promote", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL
    again = _run(tmp_path, *HGB_ONLY, "--promote")
    assert again.returncode == 0, again.stderr
    registry = assert_consistent(tmp_path)
    assert [v.version for v in registry.versions()] == [1, 2]
    assert registry.production().version == 2
    assert registry.production().algorithm == "hist_gradient_boosting"
    record = json.loads(again.stdout)
    assert record["metrics"]["pr_auc"] == reference["second"]["metrics"]["pr_auc"]
    assert record["metrics"]["roc_auc"] == reference["second"]["metrics"]["roc_auc"]


def test_two_runs_at_once_in_one_workspace(tmp_path: Path) -> None:
    env = {**os.environ}
    commands = [[sys.executable, "-m", "churnctl", "run", "--json", "--workspace",
                 str(tmp_path), *SMALL, *algorithms]
                for algorithms in (LR_ONLY, HGB_ONLY)]
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env) for c in commands]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [o[1][-500:] for o in outputs]
    registry = assert_consistent(tmp_path)
    versions = registry.versions()
    assert len(versions) == 2
    decisions = [v.decision for v in versions]
    # The second writer waited and compared against the first one's model.
    assert decisions[0] == "first model: promoted"
    assert "vs production v1" in decisions[1] or "cannot compare" in decisions[1]


def test_second_run_with_no_wait_exits_2_naming_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-m", "churnctl", "run", "--workspace",
                               str(tmp_path), *SMALL], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / ".churnctl" / "lock.json"
        for _ in range(600):
            if lock.exists():
                break
            assert holder.poll() is None
            import time

            time.sleep(0.05)
        busy = subprocess.run([sys.executable, "-m", "churnctl", "run", "--no-wait",
                               "--workspace", str(tmp_path), *SMALL],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2
        assert f"pid {holder.pid}" in busy.stderr
    finally:
        holder.kill()
        holder.wait()
