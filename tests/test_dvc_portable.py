"""Portable DVC files: dvc.yaml, params.yaml and dvc.lock name no path outside the workspace,
so a teammate's clone (or a container) with churnctl installed elsewhere finds every stage up
to date, while a change of a stage's code version still makes DVC rerun that stage.

Reuses the one small v2 workspace of test_v2_pipeline (copied per test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import churnctl
from churnctl.code_version import CodeVersion, backend_code_version
from churnctl.orchestrators import dvc_pipeline
from churnctl.registry import backend_class
from tests.test_v2_pipeline import V2, _invoke, _record, _statuses, v2_copy, v2_run

pytestmark = pytest.mark.slow
__all__ = ["v2_copy", "v2_run"]  # the shared fixtures

PACKAGE = Path(churnctl.__file__).resolve().parent
DVC_FILES = ("dvc.yaml", "params.yaml", "dvc.lock")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def _move(source: Path, target: Path) -> Path:
    """A copy of workspace `source` at `target` (its .dvc cache included), as a clone."""
    shutil.copytree(source, target, symlinks=True)
    for path in (target / ".churnctl" / "tracking").glob("*.json"):  # SQLite store's path
        path.write_text(path.read_text().replace(str(source), str(target)))
    return target


def _install_elsewhere(target: Path) -> Path:
    """churnctl's source (and shipped profiles) at another path: another machine's install."""
    shutil.copytree(PACKAGE, target / "churnctl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(PACKAGE.parent / "profiles", target / "profiles")
    return target


def _churnctl(root: Path, site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "CHURNCTL_FORCE")}
    env["PYTHONPATH"] = str(site)  # before the venv's own churnctl on sys.path
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run([sys.executable, "-m", "churnctl", *args, "--workspace", str(root)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def _dvc_status(root: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout or "{}")


def test_dvc_files_hold_no_absolute_path(v2_run) -> None:
    root, _ = v2_run
    forbidden = {str(root), str(root.resolve()), str(PACKAGE), str(PACKAGE.parent),
                 sys.prefix, sys.base_prefix}
    for name in DVC_FILES:
        text = (root / name).read_text()
        assert not [f for f in forbidden if f in text], name
        absolute = [s for s in _strings(yaml.safe_load(text)) if s.startswith(("/", "~"))
                    or (len(s) > 2 and s[1] == ":" and s[2] in "\\/")]
        assert absolute == [], f"{name}: {absolute}"
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    deps = {dep["path"] for stage in lock.values() for dep in stage.get("deps", [])}
    assert deps == {"data/ingest", "data/validate", "data/features"}
    # What the paths covered before is in the params DVC tracks, hashed.
    ingest = lock["ingest"]["params"]["params.yaml"]["ingest"]
    assert len(ingest["code_version"]) == 64
    assert set(ingest["input_files"]) == {"churnctl/backends/scripts/generate_data.sh"}


def test_a_clone_elsewhere_with_churnctl_installed_elsewhere_is_up_to_date(
        v2_copy: Path, tmp_path: Path) -> None:
    """Copy the finished workspace (with its .dvc cache) and churnctl's source to other
    directories: `dvc status` finds every stage up to date and `run` runs no stage."""
    first = _install_elsewhere(tmp_path / "site-a")
    # Up to date with this snapshot of the source first: the checkout may be edited meanwhile.
    settled = _churnctl(v2_copy, first, "run", *V2, "--json")
    assert settled.returncode == 0, settled.stderr[-3000:]
    clone = _move(v2_copy, tmp_path / "clone")
    site = _install_elsewhere(tmp_path / "site-b")
    shutil.rmtree(first)  # nothing may still point at the first install
    assert _dvc_status(clone) == {}
    done = _churnctl(clone, site, "run", *V2, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert set(_statuses(record).values()) == {"cached"}, done.stderr[-3000:]
    assert "Data and pipelines are up to date" in done.stderr
    assert "Running stage" not in done.stderr
    rows = [json.loads(p.read_text()) for p in (clone / ".churnctl" / "stage-rows").glob("*")]
    assert all(row["run_id"] != record["run_id"] for row in rows)  # no stage command ran
    assert _dvc_status(clone) == {}


def test_a_changed_code_version_makes_dvc_rerun_that_stage(
        v2_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library upgrade (simulated) changes train's code version in params.yaml: DVC reruns
    train alone and records the new version in dvc.lock."""
    real = dvc_pipeline.backend_code_version

    def upgraded(cls: type, cache_dir: Path | None = None) -> CodeVersion:
        version = real(cls, cache_dir)
        if cls.stage != "train":
            return version
        return CodeVersion(version.modules, {**version.distributions,
                                             "scikit-learn": "99.0.0"}, version.python)

    # Settled first with the real version: the checkout may be edited while tests run.
    _record(_invoke(v2_copy, "run", *V2, "--json"))
    monkeypatch.setattr(dvc_pipeline, "backend_code_version", upgraded)
    params = (v2_copy / "params.yaml").read_text()
    result = _invoke(v2_copy, "run", *V2, "--json")
    _record(result)
    assert (v2_copy / "params.yaml").read_text() != params
    assert "Running stage 'train'" in result.stderr
    for stage in ("ingest", "validate", "features"):
        assert f"Stage '{stage}' didn't change" in result.stderr, result.stderr
    lock = yaml.safe_load((v2_copy / "dvc.lock").read_text())["stages"]
    train = lock["train"]["params"]["params.yaml"]["train"]
    assert train["libraries"]["scikit-learn"] == "99.0.0"
    sklearn = backend_class("train", "sklearn")
    assert train["code_version"] == upgraded(sklearn).digest
    assert train["code_version"] != backend_code_version(sklearn).digest
