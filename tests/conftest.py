"""Shared fixtures: an isolated workspace, a CLI invoker, and one small finished v1 run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app

SMALL = ["--set", "ingest.users=400", "--set", "ingest.days=100"]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Invoke churnctl in an empty workspace; returns click's Result (exit_code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    runner = CliRunner()

    def invoke(*args: str, **kwargs: object) -> object:
        return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A workspace where a small v1 run finished, and its run record (do not mutate)."""
    root = tmp_path_factory.mktemp("small_run")
    result = CliRunner().invoke(app, ["run", "--workspace", str(root), "--json", *SMALL],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


@pytest.fixture
def finished_workspace(small_run: tuple[Path, dict], tmp_path: Path) -> Path:
    """A private copy of the small finished run's workspace, safe to change."""
    target = tmp_path / "ws"
    shutil.copytree(small_run[0], target)
    return target
