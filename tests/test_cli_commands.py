"""The small commands: backends, doctor, data generate, --version."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from churnctl import __version__


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_backends_lists_builtin_and_planned(cli) -> None:
    result = cli("backends", "--json")
    assert result.exit_code == 0
    rows = {(r["stage"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("train", "sklearn")]["installed"] is True
    assert rows[("ingest", "files")]["target"].endswith("FilesIngest")
    assert rows[("orchestrator", "kubeflow")]["implemented"] is False
    assert rows[("orchestrator", "kubeflow")]["install"] == "pip install 'churnctl[kubeflow]'"
    assert rows[("validate", "gx-spark")]["install"] == "pip install 'churnctl[gx,spark]'"
    assert rows[("validate", "gx")]["implemented"] is True
    table = cli("backends")
    assert "planned" in table.stdout and "installed" in table.stdout


def test_doctor_passes_for_v1_and_names_what_v4_lacks(cli) -> None:
    ok = cli("doctor", "--profile", "v1", "--json")
    assert ok.exit_code == 0, ok.output
    checks = {c["binding"]: c for c in json.loads(ok.stdout)["checks"]}
    assert checks["train"]["ok"] and "sklearn" in checks["train"]["detail"]
    # Every backend of v4 is implemented now; orchestrator.kubeflow is still planned.
    Path("kf.yaml").write_text("name: kf\nextends: v3\norchestrator: {backend: kubeflow}\n")
    missing = cli("doctor", "--profile", "kf.yaml", "--json")
    assert missing.exit_code == 2
    rows = {c["binding"]: c for c in json.loads(missing.stdout)["checks"]}
    assert rows["orchestrator"]["ok"] is False and "planned" in rows["orchestrator"]["detail"]


def test_data_generate_csv_and_parquet(cli, tmp_path: Path) -> None:
    result = cli("data", "generate", "--users", "50", "--days", "60", "--format", "csv",
                 "--out", str(tmp_path / "csv"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    users = pd.read_csv(tmp_path / "csv" / "users.csv")
    assert summary["users"] == len(users) == 50
    assert cli("data", "generate", "--users", "50", "--days", "60",
               "--out", str(tmp_path / "pq")).exit_code == 0
    assert len(pd.read_parquet(tmp_path / "pq" / "events.parquet")) > 0


def test_data_generate_bad_arguments(cli, tmp_path: Path) -> None:
    bad_format = cli("data", "generate", "--format", "xlsx", "--out", str(tmp_path))
    assert bad_format.exit_code == 2 and "--format" in bad_format.stderr
    bad_start = cli("data", "generate", "--start", "yesterday", "--out", str(tmp_path))
    assert bad_start.exit_code == 2 and "--start" in bad_start.stderr
    assert cli("data", "generate", "--seed", "-1", "--out", str(tmp_path)).exit_code == 2


def test_debug_shows_the_traceback(cli, monkeypatch) -> None:
    import pytest

    from churnctl.errors import UserError

    assert cli("run", "--profile", "v9").exit_code == 2  # one line, no traceback
    monkeypatch.setenv("CHURNCTL_DEBUG", "1")
    with pytest.raises(UserError, match="unknown profile 'v9'"):
        cli("run", "--profile", "v9")
