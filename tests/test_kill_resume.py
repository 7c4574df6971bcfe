"""A run killed with SIGKILL mid-way and started again completes with the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SMALL

pytestmark = pytest.mark.slow


def _run(workspace: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "churnctl", "run", "--json", "--workspace", str(workspace), *SMALL],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


@pytest.mark.parametrize("kill_after", ["validate", "features"])
def test_sigkill_then_rerun_gives_the_same_result(small_run, tmp_path: Path,
                                                  kill_after: str) -> None:
    _, reference = small_run
    workspace = tmp_path / "ws"
    workspace.mkdir()
    process = _run(workspace)
    stage_dir = workspace / ".churnctl" / "artifacts" / kill_after
    deadline = time.monotonic() + 120
    while not (stage_dir.exists() and any(p.name != "LATEST" and not p.name.startswith(".")
                                          for p in stage_dir.iterdir())):
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    again = _run(workspace)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0
    record = json.loads(out)
    statuses = {s["name"]: s["status"] for s in record["stages"]}
    assert statuses["ingest"] == "cached"  # committed before the kill, reused after it
    assert record["metrics"]["pr_auc"] == reference["metrics"]["pr_auc"]
    assert record["metrics"]["roc_auc"] == reference["metrics"]["roc_auc"]
    # What the killed run was writing is swept when the stage runs again.
    assert list((workspace / ".churnctl" / "artifacts").rglob("*.tmp")) == []


def test_sweep_removes_every_temp_entry_and_nothing_else(tmp_path: Path) -> None:
    """Called under the writer lock, every temp entry is a dead writer's, whatever its pid
    says (a pid means nothing on a volume another host writes)."""
    from churnctl.atomic import sweep_stale

    (tmp_path / ".abc.pid1.x1.tmp").mkdir()
    (tmp_path / ".def.pid2.x2.tmp").write_text("half")
    (tmp_path / f".ghi.pid{os.getpid()}.x3.tmp").mkdir()
    committed = tmp_path / "0123456789abcdef"
    committed.mkdir()
    removed = sweep_stale(tmp_path)
    assert len(removed) == 3
    assert [p.name for p in tmp_path.iterdir()] == [committed.name]


def test_a_pointer_left_half_written_is_swept_when_the_stage_is_cached(
        finished_workspace: Path) -> None:
    """A kill between a stage's commit and its LATEST pointer's rename leaves the pointer's
    temp file; the next run finds the stage cached and must sweep it all the same."""
    from typer.testing import CliRunner

    from churnctl.cli.main import app

    stage = finished_workspace / ".churnctl" / "artifacts" / "features"
    left = stage / ".LATEST.pid23281._ohshuqr.tmp"
    left.write_text("0123")
    result = CliRunner().invoke(app, ["run", "--json", "--workspace", str(finished_workspace),
                                      *SMALL], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert {s["name"]: s["status"] for s in json.loads(result.stdout)["stages"]}[
        "features"] == "cached"
    assert not left.exists()
