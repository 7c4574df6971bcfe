"""`churnctl run --profile v3` end to end on the built-in data: DVC, GX gate, MLflow.

Until the Feast backend is registered, the v3 profile's features stage runs on pandas here
(`--set features.backend=pandas`); the validate stage is the profile's own `gx`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.registry import describe
from tests.conftest import SMALL

pytestmark = pytest.mark.slow

FEATURES = [] if describe("features", "feast").installed else ["--set", "features.backend=pandas"]


def _invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--workspace", str(root)], catch_exceptions=False)


@pytest.fixture(scope="module")
def v3_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("v3_run")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        result = _invoke(root, "run", "--profile", "v3", *SMALL, *FEATURES)
    finally:
        mp.undo()
    return root, result


def test_v3_runs_end_to_end_with_the_gx_gate(v3_run) -> None:
    root, result = v3_run
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stdout.splitlines() if x.startswith("data docs: ")]
    docs = Path(line.removeprefix("data docs: "))
    assert docs.is_file() and docs.is_relative_to(root / ".churnctl" / "artifacts" / "validate")
    assert "report: " in result.stdout
    assert (root / "gx" / "checkpoints" / "churnctl_events.json").is_file()


def test_v3_no_op_rerun_keeps_the_docs_path_in_the_record(v3_run) -> None:
    root, first = v3_run
    assert first.exit_code == 0, first.output
    result = _invoke(root, "run", "--profile", "v3", *SMALL, *FEATURES, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    validate = next(r for r in record["stages"] if r["name"] == "validate")
    # "cached" unless a file of its code changed in between (a shared checkout being edited).
    assert validate["backend"] == "gx" and validate["status"] in ("cached", "ran")
    assert Path(validate["summary"]["data_docs"]).is_file()


def test_v3_logs_the_data_docs_to_mlflow(v3_run) -> None:
    root, result = v3_run
    assert result.exit_code == 0, result.output
    logged = [p for p in root.rglob("index.html")
              if p.parent.name == "data_docs" and p.parent.parent.name == "reports"
              and p.parent.parent.parent.name == "artifacts"]
    assert logged, "no Data Docs in the MLflow run's artifacts"
    assert list(logged[0].parent.rglob("validations/churnctl_events/**/*.html"))


def test_the_model_report_links_the_data_docs(v3_run) -> None:
    import re

    root, result = v3_run
    assert result.exit_code == 0, result.output
    record = json.loads(next((root / ".churnctl" / "runs").glob("*.json")).read_text())
    page = (root / record["report"]["html"]).read_text()
    [href] = re.findall(r'id="data-docs" href="([^"]+)"', page)
    assert (root / "reports" / href).resolve().is_file()
    assert record["report"]["data_docs"].endswith("data_docs/index.html")
