"""Each kind of input reruns a stage with the reason named; no change reruns nothing; a damaged
artifact is never trusted; a failed stage keeps its row in the run record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from churnctl import cache_key
from churnctl import code_version as cv
from churnctl.profile import load_profile
from churnctl.runner import Runner
from churnctl.workspace import Workspace

pytestmark = pytest.mark.slow
SMALL = ["ingest.users=400", "ingest.days=100"]


def _plan(workspace: Path, *overrides: str, verify: bool = False) -> dict[str, str]:
    runner = Runner(load_profile("v1", [*SMALL, *overrides]), Workspace(workspace),
                    log=lambda _: None, verify=verify)
    return {p.stage: p.reason if p.status != "cached" else "cached" for p in runner.plan()}


@pytest.fixture(autouse=True)
def _fresh_code_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    cache_key.code_component.cache_clear()
    yield
    cache_key.code_component.cache_clear()


def test_no_change_is_all_cached(finished_workspace: Path) -> None:
    assert set(_plan(finished_workspace).values()) == {"cached"}


def test_an_option_change_names_the_option(finished_workspace: Path) -> None:
    plan = _plan(finished_workspace, "train.promotion_margin=0.02")
    assert plan["train"] == "options changed: promotion_margin"
    assert {plan[s] for s in ("ingest", "validate", "features")} == {"cached"}


def test_an_input_artifact_change_names_the_input(finished_workspace: Path) -> None:
    runner = Runner(load_profile("v1", ["ingest.users=401", "ingest.days=100"]),
                    Workspace(finished_workspace), log=lambda _: None)
    runner.execute(only=["ingest"])
    plan = {p.stage: p.reason for p in runner.plan()}
    assert plan["validate"] == "input changed: ingest"


def test_a_library_version_change_names_the_library(finished_workspace: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = cv._dist_version
    monkeypatch.setattr(cv, "_dist_version",
                        lambda name: "0.0.1" if name == "scikit-learn" else real(name))
    monkeypatch.setattr(cv, "_path_fingerprint", lambda: "after an upgrade")
    plan = _plan(finished_workspace)
    from importlib.metadata import version

    # validate's leakage check imports scikit-learn; ingest does not use it.
    assert plan["validate"] == f"scikit-learn {version('scikit-learn')} -> 0.0.1"
    assert plan["ingest"] == "cached"


def test_an_external_file_change_names_the_file(tmp_path: Path) -> None:
    from churnctl.domain.generator import GeneratorConfig, generate

    users, events = generate(GeneratorConfig(users=300, days=90))
    data = tmp_path / "data"
    data.mkdir()
    users.to_csv(data / "users.csv", index=False)
    events.to_csv(data / "events.csv", index=False)
    files = ["ingest.backend=files", "ingest.users=data/users.csv",
             "ingest.events=data/events.csv"]
    runner = Runner(load_profile("v1", files), Workspace(tmp_path), log=lambda _: None)
    runner.execute(only=["ingest"])
    with (data / "events.csv").open("a") as handle:
        handle.write(events.tail(1).to_csv(index=False, header=False))
    plan = {p.stage: p.reason for p in runner.plan()}
    assert plan["ingest"] == "input file changed: data/events.csv"


def test_editing_a_transitively_imported_module_reruns_its_stages(finished_workspace: Path,
                                                                  tmp_path: Path) -> None:
    """A real edit of domain/schema.py (which no backend lists by hand) in a copy of the
    package, seen by `churnctl plan` in a fresh process."""
    import churnctl

    source = Path(churnctl.__file__).parent
    copy = tmp_path / "pkg"
    shutil.copytree(source, copy / "churnctl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(source.parent / "profiles", copy / "profiles")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "churnctl", "plan", "--json", "--workspace",
               str(finished_workspace), *[a for o in SMALL for a in ("--set", o)]]

    def reasons() -> dict[str, str]:
        # cwd elsewhere: `python -m` puts the working directory first on sys.path.
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                              cwd=tmp_path)
        return {p["stage"]: p["reason"] for p in json.loads(done.stdout)["stages"]
                if p["status"] != "cached"}

    assert reasons() == {}  # the copy is byte-identical: same code version
    schema = copy / "churnctl" / "domain" / "schema.py"
    schema.write_text(schema.read_text() + "\n# edited\n")
    changed = reasons()
    # The generator (ingest) and the validate checks both import the schema module.
    assert changed["ingest"] == "code changed: churnctl/domain/schema.py"
    assert set(changed) == {"ingest", "validate", "features", "train"}


def test_a_truncated_or_deleted_artifact_file_reruns_the_stage(finished_workspace: Path) -> None:
    train = Workspace(finished_workspace).artifacts / "train"
    key = (train / "LATEST").read_text().strip()[:16]
    predictions = train / key / "test_predictions.parquet"
    predictions.write_bytes(predictions.read_bytes()[:100])
    plan = _plan(finished_workspace)
    assert plan["train"].startswith("output damaged (test_predictions.parquet (size 100")
    predictions.unlink()
    assert _plan(finished_workspace)["train"].startswith(
        "output damaged (test_predictions.parquet (missing)")
    runner = Runner(load_profile("v1", SMALL), Workspace(finished_workspace), log=lambda _: None)
    record = runner.execute()
    assert {r["name"]: r["status"] for r in record["stages"]}["train"] == "ran"
    assert predictions.is_file()


def test_verify_rehashes_and_catches_a_same_size_edit(finished_workspace: Path) -> None:
    features = Workspace(finished_workspace).artifacts / "features"
    key = (features / "LATEST").read_text().strip()[:16]
    target = features / key / "latest.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert _plan(finished_workspace)["features"] == "cached"  # sizes match: the cheap check
    assert _plan(finished_workspace, verify=True)["features"].startswith(
        "output damaged (latest.parquet")


def test_a_failed_stage_keeps_its_row_in_the_run_record(finished_workspace: Path) -> None:
    from churnctl.errors import GateFailed

    runner = Runner(load_profile("v1", [*SMALL, "train.leakage_max_auc=0.51"]),
                    Workspace(finished_workspace), log=lambda _: None)
    with pytest.raises(GateFailed):
        runner.execute()
    record_file = max((finished_workspace / ".churnctl" / "runs").glob("*.json"),
                      key=lambda p: p.stat().st_mtime)
    record = json.loads(record_file.read_text())
    assert record["status"] == "failed"
    row = next(r for r in record["stages"] if r["name"] == "train")
    assert row["status"] == "failed" and "leakage guard" in row["error"]
