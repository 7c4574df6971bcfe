"""The v1 pipeline end to end through the CLI: run, cache, plan, resume, records, registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from churnctl.domain.model_registry import ModelRegistry
from churnctl.runner import LATEST
from churnctl.workspace import Workspace
from tests.conftest import SMALL


def test_first_run_runs_every_stage_and_records_it(small_run) -> None:
    root, record = small_run
    assert [(s["name"], s["status"]) for s in record["stages"]] == [
        ("ingest", "ran"),
        ("validate", "ran"),
        ("features", "ran"),
        ("train", "ran"),
    ]
    assert record["profile"] == "v1" and record["status"] == "succeeded"
    for key in ("pr_auc", "roc_auc", "brier"):
        assert 0 < record["metrics"][key] < 1
    assert record["metrics"]["roc_auc"] > 0.7  # learnable, yet
    assert record["metrics"]["roc_auc"] < 0.99  # not leaking
    saved = json.loads((root / ".churnctl" / "runs" / f"{record['run_id']}.json").read_text())
    assert saved["stages"][0]["outputs"]["users.parquet"]  # content hashes are recorded
    production = ModelRegistry(Workspace(root).registry).production()
    assert production is not None and production.version == 1


def test_second_run_is_all_cached_and_registers_nothing_new(cli, finished_workspace: Path) -> None:
    result = cli("run", "--workspace", str(finished_workspace), "--json", *SMALL)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert {s["status"] for s in record["stages"]} == {"cached"}
    assert len(ModelRegistry(Workspace(finished_workspace).registry).versions()) == 1
    human = cli("run", "--workspace", str(finished_workspace), *SMALL)
    assert "report:" in human.stdout and "promoted" not in human.stdout  # no decision again


def test_plan_explains_what_changed(cli, finished_workspace: Path) -> None:
    ws = str(finished_workspace)
    cached = json.loads(cli("plan", "--workspace", ws, "--json", *SMALL).stdout)
    assert [s["status"] for s in cached["stages"]] == ["cached"] * 4
    changed = json.loads(
        cli(
            "plan", "--workspace", ws, "--json", *SMALL, "--set", "train.promotion_margin=0.05"
        ).stdout
    )
    train = changed["stages"][3]
    assert train["status"] == "run" and "promotion_margin" in train["reason"]
    upstream = json.loads(
        cli("plan", "--workspace", ws, "--json", *SMALL, "--set", "ingest.seed=7").stdout
    )
    assert upstream["stages"][0]["status"] == "run" and "seed" in upstream["stages"][0]["reason"]
    assert upstream["stages"][1]["reason"].startswith("after ingest")


def test_changed_option_reruns_only_downstream(cli, finished_workspace: Path) -> None:
    result = cli(
        "run",
        "--workspace",
        str(finished_workspace),
        "--json",
        *SMALL,
        "--set",
        "features.snapshot_every_days=5",
    )
    statuses = {s["name"]: s["status"] for s in json.loads(result.stdout)["stages"]}
    assert statuses == {"ingest": "cached", "validate": "cached", "features": "ran", "train": "ran"}


def test_only_and_from(cli, finished_workspace: Path) -> None:
    ws = str(finished_workspace)
    only = json.loads(cli("run", "--workspace", ws, "--json", *SMALL, "--only", "train").stdout)
    assert [s["name"] for s in only["stages"]] == ["train"]
    forced = json.loads(
        cli("run", "--workspace", ws, "--json", *SMALL, "--from", "features").stdout
    )
    assert [s["status"] for s in forced["stages"]] == ["cached", "cached", "ran", "ran"]
    assert forced["metrics"]["pr_auc"] == only["metrics"]["pr_auc"]  # deterministic


def test_killed_run_resumes_to_the_same_result(cli, small_run, tmp_path: Path) -> None:
    root, record = small_run
    ws = tmp_path / "resume"
    shutil.copytree(root, ws)
    # Simulate a kill after features committed: train's artifact, LATEST and registry vanish,
    # and a half-written temp dir is left behind.
    train_dir = ws / next(s["artifact"] for s in record["stages"] if s["name"] == "train")
    shutil.rmtree(train_dir)
    (ws / ".churnctl" / "artifacts" / "train" / LATEST).unlink()
    shutil.rmtree(ws / ".churnctl" / "registry")
    (train_dir.parent / f".{train_dir.name}.abc.tmp").mkdir()
    result = cli("run", "--workspace", str(ws), "--json", *SMALL)
    again = json.loads(result.stdout)
    assert [s["status"] for s in again["stages"]] == ["cached", "cached", "cached", "ran"]
    assert again["metrics"]["pr_auc"] == record["metrics"]["pr_auc"]
    assert ModelRegistry(Workspace(ws).registry).production() is not None


def test_runs_list_and_show(cli, finished_workspace: Path, small_run) -> None:
    ws = str(finished_workspace)
    listed = json.loads(cli("runs", "list", "--workspace", ws, "--json").stdout)
    run_id = small_run[1]["run_id"]
    assert listed[0]["run_id"] == run_id
    shown = cli("runs", "show", run_id[:15], "--workspace", ws)
    assert shown.exit_code == 0 and "train" in shown.stdout
    chosen = small_run[1]["stages"][-1]["summary"]["chosen"]
    assert f"model: v1 {chosen}, threshold" in shown.stdout  # the human output names it too
    assert cli("runs", "show", "nope", "--workspace", ws).exit_code == 2


def test_plan_names_backends_not_available_yet(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every stage backend the shipped profiles name is implemented now: a planned one is made
    # up here (registry.PLANNED is what `plan` consults, as it did for v4's gx-spark).
    from churnctl import registry

    monkeypatch.setitem(registry.PLANNED, "validate.gx-dask", "gx")
    planned = ("--profile", "v3", "--set", "validate.backend=gx-dask")
    result = cli("plan", *planned, "--json")
    assert result.exit_code == 0, result.output
    stages = {s["stage"]: s for s in json.loads(result.stdout)["stages"]}
    assert stages["validate"]["status"] == "unavailable"
    assert "gx-dask" in stages["validate"]["reason"]
    assert stages["ingest"]["status"] == "run"
    blocked = cli("run", *planned)
    assert blocked.exit_code == 2 and "validate (gx-dask)" in blocked.stderr


def test_plan_table_shows_install_hints_whole(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import churnctl.runner

    real = churnctl.runner.missing_requirements
    monkeypatch.setattr(churnctl.runner, "missing_requirements", lambda cls: (
        ["python module great_expectations"] if cls.name == "gx" else real(cls)))
    table = cli("plan", "--profile", "v3")
    assert table.exit_code == 0, table.output
    # rich reads "[gx]" as a markup tag unless escaped: the hint would print as 'churnctl'.
    assert "pipinstall'churnctl[gx]'" in "".join(c for c in table.stdout if c not in "│ \n")


def test_churnctl_state_stays_out_of_git_status(finished_workspace: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(finished_workspace)], check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=finished_workspace, capture_output=True, text=True, check=True)
    assert [line for line in status.stdout.splitlines()
            if ".churnctl/" in line or "reports/" in line] == []
    assert (finished_workspace / ".churnctl" / "artifacts").is_dir()  # the state is there
