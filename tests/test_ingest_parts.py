"""ingest.files on Parquet part directories (what `data generate --chunk-users` writes):
conformed part by part into a part-directory artifact the later stages read, every part in
the cache key, and an empty directory refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig
from churnctl.domain.generator_chunks import BLOCK_USERS, write_chunked
from tests.spark_session import spark  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[1]


def _run(root: Path, data: Path, *extra: str) -> object:
    return CliRunner().invoke(app, [
        "run", "--workspace", str(root), "--json", "--set", "ingest.backend=files",
        "--set", f"ingest.users={data / 'users.parquet'}",
        "--set", f"ingest.events={data / 'events.parquet'}", *extra])


def test_part_directories_run_through_ingest_validate_and_features(tmp_path: Path) -> None:
    data = tmp_path / "data"
    written = write_chunked(GeneratorConfig(users=2 * BLOCK_USERS, days=100), data,
                            BLOCK_USERS)
    assert written["parts"] == 2
    root = tmp_path / "ws"
    result = _run(root, data, "--only", "ingest", "--only", "validate", "--only", "features")
    assert result.exit_code == 0, result.output
    stages = {s["name"]: s for s in json.loads(result.stdout)["stages"]}
    assert [stages[s]["status"] for s in ("ingest", "validate", "features")] == ["ran"] * 3
    assert stages["ingest"]["summary"] == {"users_rows": 2 * BLOCK_USERS,
                                           "events_rows": written["events"]}
    artifact = root / stages["ingest"]["artifact"]
    assert sorted(p.name for p in (artifact / "events.parquet").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(artifact / "events.parquet"),
                                  pd.read_parquet(data / "events.parquet"), check_dtype=False)
    assert stages["features"]["metrics"]["train_rows"] > 0

    again = _run(root, data, "--only", "ingest")
    assert json.loads(again.stdout)["stages"][0]["status"] == "cached"
    # Any part is part of the key: a changed one reruns ingest, and plan names it.
    part = data / "events.parquet" / "part-00001.parquet"
    frame = pd.read_parquet(part)
    frame.iloc[:-1].to_parquet(part, index=False)
    plan = CliRunner().invoke(app, [
        "plan", "--workspace", str(root), "--json", "--set", "ingest.backend=files",
        "--set", f"ingest.users={data / 'users.parquet'}",
        "--set", f"ingest.events={data / 'events.parquet'}"])
    ingest = json.loads(plan.stdout)["stages"][0]
    assert ingest["status"] == "run" and "part-00001.parquet" in ingest["reason"], ingest


def test_a_directory_without_parts_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_chunked(GeneratorConfig(users=50, days=60), data, BLOCK_USERS)
    for part in (data / "events.parquet").iterdir():
        part.unlink()
    result = _run(tmp_path / "ws", data, "--only", "ingest")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {data / 'events.parquet'}: a directory without Parquet part files "
        "(*.parquet); name a CSV or Parquet file, or a directory of Parquet parts"]


@pytest.mark.slow
def test_features_spark_reads_the_part_directories(spark, tmp_path: Path) -> None:  # noqa: F811
    """features.spark on the chunked generator's data (through ingest.files) gives the rows
    features.pandas gives, in the test run's one Spark session."""
    data = tmp_path / "data"
    write_chunked(GeneratorConfig(users=BLOCK_USERS + 300, days=100), data, BLOCK_USERS)
    rows = {}
    for backend in ("pandas", "spark"):
        result = _run(tmp_path / "ws", data, "--only", "ingest", "--only", "validate",
                      "--only", "features", "--set", f"features.backend={backend}")
        assert result.exit_code == 0, result.output
        features = json.loads(result.stdout)["stages"][2]
        assert features["backend"] == backend and features["status"] == "ran"
        rows[backend] = (features["metrics"]["train_rows"], features["metrics"]["test_rows"])
    assert rows["spark"] == rows["pandas"] and rows["spark"][0] > 0


@pytest.mark.slow
def test_bench_spark_takes_the_chunked_generators_data(tmp_path: Path) -> None:
    """bench/bench_spark.py --chunked at a tiny size, pandas only (no JVM in a child)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_spark.py"), "--users", "6000", "--days",
         "100", "--chunked", "--chunk-users", "5000", "--backends", "pandas",
         "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads((tmp_path / "spark_6000_4g_chunked_pandas_only.json").read_text())
    assert figures["generator"]["parts"] == 2 and figures["generator"]["chunk_users"] == 5000
    assert figures["events"] > 0 and figures["features"]["pandas"]["train_rows"] > 0
    assert set(figures["features"]) == {"pandas"}
    assert figures["load_average_at_start"] and figures["load_average_at_end"]
