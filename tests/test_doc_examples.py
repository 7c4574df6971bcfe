"""Every `churnctl` example in the README, docs/ and `--help`, and every documented /predict
request, works as written on the built-in data (the issue: a documented request was a 404 on
it). A new example is run here, or named in COVERED_ELSEWHERE with the test that runs it."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app

ROOT = Path(__file__).parent.parent

# Examples that need a server, a cluster, another profile's services or minutes: each is run
# by the named test file, which must exist and contain the given fragment of the command.
COVERED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "churnctl serve": ("tests/test_serving_process.py", "churnctl serve"),
    "churnctl run --set ingest.users=20000": ("bench/bench_pipeline.py", "ingest.users"),
    "churnctl run --profile v1 --set ingest.users=20000": ("bench/bench_pipeline.py",
                                                           "ingest.users"),
    "churnctl deploy --context": ("tests/test_deploy_emulator.py", '"--context"'),
    "churnctl deploy --overlay production --image": ("tests/test_deploy_emulator.py",
                                                     '"--image"'),
    # Needs the repository's infra/k8s/base beside the overlay it defines.
    "churnctl deploy --overlay my-overlay": ("tests/test_deploy_render.py",
                                             "def test_custom_overlay_directory"),
    "churnctl scan": ("tests/test_scan.py", '"scan"'),
    "churnctl stage run": ("tests/test_v2_units.py", '"stage", "run"'),
    "churnctl pipeline compile --target kubeflow": ("tests/test_v2_kubeflow.py", "kubeflow"),
    "churnctl tracking sync": ("tests/test_v2_tracking.py", "tracking sync"),
    "churnctl dvc": ("tests/test_v2_pipeline.py", '"dvc", "push"'),
    "churnctl run --profile v2": ("tests/test_v2_pipeline.py", '"v2"'),
    "churnctl serve --profile v2": ("tests/test_v2_registry_of_record.py", "v2"),
    "churnctl run --profile v3": ("tests/test_gx_v3.py", '"v3"'),
    "churnctl serve --profile v3": ("tests/test_feast_v3.py", "v3"),
    "churnctl validate suite": ("tests/test_gx_gate.py", '"validate", "suite"'),
    "churnctl features get": ("tests/test_feast_features.py", '"features", "get"'),
    # v4 (issue 14): a cluster with Argo Rollouts (the emulator), Prometheus, an A/B server.
    "churnctl deploy --profile v4 --canary": ("tests/test_rollouts_emulator.py", '"--canary"'),
    "churnctl deploy --profile v4 --region": ("tests/test_rollouts_emulator.py",
                                              '"--region", "eu-west-1"'),
    "churnctl deploy --profile v4 --all-regions": ("tests/test_rollouts_regions.py",
                                                   '"--all-regions"'),
    "churnctl deploy status": ("tests/test_rollouts_emulator.py", '"status", "--watch"'),
    "churnctl deploy promote": ("tests/test_rollouts_emulator.py", '"promote", "--full"'),
    "churnctl deploy abort": ("tests/test_rollouts_emulator.py", '"deploy", "abort"'),
    "churnctl deploy retry": ("tests/test_rollouts_emulator.py", '"deploy", "retry"'),
    "churnctl deploy analyze": ("tests/test_rollouts_analysis.py", '"--abort-on-failure"'),
    "churnctl serve --profile v4": ("tests/test_ab_serving.py", "FastapiAbServe"),
    # v4 GX on Spark (issue 16): a JVM, then the v3 pipeline on it.
    "churnctl run --profile gx-spark.yaml": ("tests/test_gx_spark.py", "gx-spark.yaml"),
    # v4 Spark features (issue 16): a JVM and a whole pipeline on Spark (minutes).
    "churnctl run --profile spark.yaml": ("tests/test_features_spark.py", "spark.yaml"),
    "churnctl ab": ("tests/test_ab_serving.py", '"ab", "report"'),
    # v4 streaming (issue 17): a Kafka-protocol broker (Tansu) and, for score, a trained model.
    "churnctl stream produce": ("tests/test_stream_produce.py", '"stream", "produce"'),
    "churnctl stream score": ("tests/test_stream_score.py", '"stream", "score"'),
    "churnctl run --profile stream.yaml": ("tests/test_stream_e2e.py", "stream.yaml"),
    # v4 end to end (issues 16, 17): a broker, and validation and features on Spark.
    "churnctl run --profile my-v4.yaml": ("tests/test_v4_e2e.py", "my-v4.yaml"),
    # The chunked generator's part directories through ingest.files onto Spark (a JVM).
    "churnctl run --set ingest.backend=files": ("tests/test_ingest_parts.py",
                                                "features.backend={backend}"),
    # Two or more whole pipelines each (a minute or more): run by the tests of the commands.
    "churnctl parity": ("tests/test_parity.py", '"parity", "v1", "v2"'),
    "churnctl profile upgrade --to v2 --gate": ("tests/test_profile_upgrade.py",
                                                '"--gate", "--write"'),
}

# Commands whose exit code is a documented verdict: (command prefix, exit code, text it prints).
# The planted drift in data/today/ fails the check, as the example means it to.
VERDICTS = [("churnctl monitor drift", 2, '"status": "fail"')]

PLACEHOLDER_RUN_ID = re.compile(r"\b\d{8}-\d{4,6}\b")


def _strip(line: str) -> str:
    return line.split("  #", 1)[0].strip().removeprefix("$ ")


def _bash_block_commands(text: str) -> list[str]:
    commands = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        commands += [_strip(line) for line in joined.splitlines()
                     if _strip(line).startswith("churnctl ")]
    return commands


def _help_commands() -> list[str]:
    def walk(command: click.Command):
        yield command
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from walk(sub)

    commands = []
    for command in walk(typer.main.get_command(cli_app)):
        examples = (command.help or "").partition("Examples:")[2]
        commands += [_strip(line) for line in examples.splitlines()
                     if _strip(line).startswith("churnctl ")]
    return commands


def documented_commands() -> list[str]:
    texts = [(ROOT / "README.md").read_text(),
             *(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))]
    seen: dict[str, None] = {}
    for command in [c for t in texts for c in _bash_block_commands(t)] + _help_commands():
        seen.setdefault(command)
    return list(seen)


def _elsewhere(command: str) -> tuple[str, str] | None:
    matches = [k for k in COVERED_ELSEWHERE if command == k or command.startswith(k + " ")]
    return COVERED_ELSEWHERE[max(matches, key=len)] if matches else None


def test_examples_covered_elsewhere_name_a_test_that_runs_them() -> None:
    for prefix, (path, fragment) in COVERED_ELSEWHERE.items():
        assert fragment in (ROOT / path).read_text(), f"{prefix}: {path} lacks {fragment}"
    # An entry no example uses any more is dead weight: drop it.
    used = {k for c in documented_commands() for k in COVERED_ELSEWHERE
            if c == k or c.startswith(k + " ")}
    assert used == set(COVERED_ELSEWHERE), set(COVERED_ELSEWHERE) - used


def _write_example_files(root: Path) -> None:
    """The files the examples name, made the way a user would make them (generated exports,
    sample customer tables)."""
    import pandas as pd

    from churnctl.domain.generator import GeneratorConfig, generate, write_dataset
    from churnctl.domain.sample_tables import bank_like, telecom_like

    write_dataset(*generate(GeneratorConfig()), root / "data", "csv")
    (root / "u.csv").write_bytes((root / "data" / "users.csv").read_bytes())
    (root / "e.csv").write_bytes((root / "data" / "events.csv").read_bytes())
    write_dataset(*generate(GeneratorConfig(seed=7, drift=0.5)), root / "data" / "today", "csv")
    telecom_like(2000, seed=0).to_csv(root / "customers.csv", index=False)
    for name in ("customers-june.csv", "customers-2025-06.csv"):
        telecom_like(500, seed=1).drop(columns="Churn").to_csv(root / name, index=False)
    bank_like(2000).to_excel(root / "export.xlsx", index=False)
    snapshots = telecom_like(2000, seed=2).rename(columns={"Churn": "churned"})
    snapshots.insert(1, "snapshot_date", pd.Timestamp("2024-01-31")
                     + pd.to_timedelta((snapshots.index % 6) * 30, unit="D"))
    snapshots.to_parquet(root / "snapshots.parquet", index=False)
    crm = telecom_like(2000, seed=3)
    crm["Status"] = crm.pop("Churn").map({"Yes": "Closed", "No": "Open"})
    crm.to_csv(root / "crm.csv", index=False)


@pytest.fixture(scope="module")
def default_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`churnctl run` with nothing set: the built-in data the examples are written for."""
    root = tmp_path_factory.mktemp("default")
    result = CliRunner().invoke(cli_app, ["run", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    _write_example_files(root)
    record = json.loads(next((root / ".churnctl" / "runs").glob("*.json")).read_text())
    features = next(s for s in record["stages"] if s["name"] == "features")
    (root / "features.parquet").write_bytes((root / features["artifact"] / "latest.parquet")
                                            .read_bytes())
    return root


@pytest.fixture(scope="module")
def table_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of its own on a customer table (a workspace holds one production model, and a
    table model does not replace an event model without --promote): where `--data` examples
    run."""
    root = tmp_path_factory.mktemp("table")
    _write_example_files(root)
    result = CliRunner().invoke(cli_app, ["run", "--workspace", str(root), "--data",
                                          str(root / "customers.csv"), "--target", "Churn"])
    assert result.exit_code == 0, result.output
    return root


def _run_as_written(command: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    args = shlex.split(command.split(" | ", 1)[0])[1:]
    if latest := sorted((root / ".churnctl" / "runs").glob("*.json")):
        run_id = latest[-1].stem  # an example names a run id: use this workspace's newest
        args = [PLACEHOLDER_RUN_ID.sub(run_id, a) for a in args]
    result = CliRunner().invoke(cli_app, args)
    verdict = [(code, text) for prefix, code, text in VERDICTS if command.startswith(prefix)]
    if result.exit_code and verdict and "--json" in args:
        code, text = verdict[0]
        assert result.exit_code == code and text in result.stdout, f"{command}: {result.output}"
        return
    assert result.exit_code == 0, f"{command}: {result.output[-2000:]}"
    if " | jq ." in command:  # `--json | jq .key`: the key is in the JSON
        key = command.rsplit("jq .", 1)[1].split()[0]
        assert key in json.loads(result.stdout), f"{command}: no {key} in {result.stdout[:300]}"


@pytest.mark.slow
def test_every_documented_command_runs_as_written(default_workspace: Path, table_workspace: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    commands = [c for c in documented_commands() if not _elsewhere(c)]
    assert len(commands) >= 40, commands
    for command in commands:
        root = table_workspace if " --data " in command else default_workspace
        _run_as_written(command, root, monkeypatch)


def _documented_requests() -> list[tuple[str, dict]]:
    """JSON bodies of every /predict example in the README, docs/ and `serve --help`."""
    help_text = CliRunner().invoke(cli_app, ["serve", "--help"]).stdout
    texts = [(ROOT / "README.md").read_text(), help_text,
             *(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))]
    bodies = []
    for text in texts:
        for line in text.splitlines():
            found = re.search(r"/predict\S*\s.*?(?:-d|--json|--data)\s+'(\{.*\})'", line)
            if found:
                bodies.append((line.strip(), json.loads(found.group(1))))
    return bodies


def test_every_documented_request_is_answered_on_the_built_in_data(default_workspace) -> None:
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app
    from churnctl.workspace import Workspace

    requests = _documented_requests()
    assert requests, "no documented /predict example found"
    with TestClient(create_app(Workspace(default_workspace))) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        for line, body in requests:
            path = "/predict/batch" if "/predict/batch" in line else "/predict"
            answer = client.post(path, json=body)
            assert answer.status_code == 200, f"{line}: {answer.text[:300]}"
