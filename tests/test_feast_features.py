"""features.feast: the generated feature repo, the point-in-time training set (parity with
features.pandas on the same data) and the online store.

One small run with the Feast backend is built per module (Feast costs ~10 s to import and the
machine is shared): every test reads it or works on its own copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.backends.features_pandas import PandasFeatures, PandasFeaturesOptions
from churnctl.cli.main import app as cli_app
from churnctl.runs import latest_artifact
from churnctl.stages import StageContext
from churnctl.workspace import Workspace
from tests.conftest import SMALL

pytest.importorskip("feast")
pytestmark = pytest.mark.slow

FEAST = ["--profile", "v1", "--set", "features.backend=feast", *SMALL]


def invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(cli_app, [*args, "--workspace", str(root)], catch_exceptions=False)


@pytest.fixture(scope="module")
def feast_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("feast_run")
    result = invoke(root, "run", "--json", *FEAST)
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def test_run_with_feast_writes_the_repo_and_materializes(feast_run) -> None:
    root, record = feast_run
    repo = root / "feature_repo"
    assert sorted(p.name for p in repo.iterdir()) == [
        ".feastignore", "data", "entities.py", "feature_store.yaml", "features.py"]
    assert 'join_keys=["user_id"]' in (repo / "entities.py").read_text()
    text = (repo / "features.py").read_text()
    assert "user_activity = FeatureView(" in text and "user_profile = FeatureView(" in text
    assert "registry: ../.churnctl/feast/registry.db" in (repo / "feature_store.yaml").read_text()
    assert (root / ".churnctl/feast/online_store.db").stat().st_size > 0
    state = json.loads((root / ".churnctl/feast/materialized.json").read_text())
    assert state["online"] == "sqlite" and state["end"].startswith("2025-04-10")
    assert [row["status"] for row in record["stages"]] == ["ran"] * 4


def test_parity_with_pandas_backend(feast_run, tmp_path: Path) -> None:
    """Same rows, values to 1e-9 and labels as features.pandas on the same ingest."""
    ws = Workspace(feast_run[0])
    feast_out = latest_artifact(ws, "features")
    ingest = latest_artifact(ws, "ingest")
    assert feast_out is not None and ingest is not None
    ctx = StageContext("features", PandasFeaturesOptions(), {"ingest": ingest}, tmp_path, ws)
    output = PandasFeatures().run(ctx)
    for name in ("train", "test", "latest"):
        mine = pd.read_parquet(feast_out.table(name))
        theirs = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert len(mine) > 100 and list(mine.columns) == list(theirs.columns)
        pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=0, atol=1e-9)
        if name != "latest":
            assert mine["churn_label"].tolist() == theirs["churn_label"].tolist()
    assert feast_out.meta("feature_schema") == output.meta["feature_schema"]
    assert feast_out.meta("split") == output.meta["split"]


def test_second_run_is_cached_and_does_not_import_feast(feast_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    before = (root / "feature_repo/features.py").stat().st_mtime_ns
    code = ("import sys, json; from typer.testing import CliRunner; "
            "from churnctl.cli.main import app; "
            f"r = CliRunner().invoke(app, ['run', '--json', '--workspace', {str(root)!r}, "
            f"*{FEAST!r}]); assert r.exit_code == 0, r.output; "
            "print(json.dumps({'feast': 'feast' in sys.modules, "
            "'status': [s['status'] for s in json.loads(r.stdout)['stages']]}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**__import__("os").environ, "FEAST_USAGE": "False"})
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"feast": False, "status": ["cached"] * 4}
    assert (root / "feature_repo/features.py").stat().st_mtime_ns == before
