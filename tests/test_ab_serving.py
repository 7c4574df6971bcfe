"""serve.fastapi-ab on a trained workspace: variants by alias, sticky assignment, the variant in
every answer, per-variant metrics, the assignment log, hot reload per variant, `ab report`
and `ab promote` (bad input: one line, exit 2, nothing changed)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from churnctl.ab.aliases import LocalAliases
from churnctl.ab.assign import assign
from churnctl.backends.serve_fastapi_ab import AbServeOptions, FastapiAbServe
from churnctl.cli.main import app
from churnctl.domain.model_registry import ModelRegistry
from churnctl.workspace import Workspace
from tests.model_variants import register_shifted

WEIGHTS = {"champion": 0.5, "challenger": 0.5}


@pytest.fixture
def workspace(finished_workspace: Path) -> Path:
    version = register_shifted(finished_workspace)
    LocalAliases(ModelRegistry(Workspace(finished_workspace).registry)).set("challenger",
                                                                             version)
    profile = finished_workspace / "ab.yaml"
    profile.write_text(yaml.safe_dump({"name": "ab", "extends": "v1", "stages": {"serve": {
        "backend": "fastapi-ab", "options": {"variants": WEIGHTS, "salt": "test-1",
                                             "reload_interval_seconds": 0.2, "mde": 0.05}}}}))
    return finished_workspace


@pytest.fixture
def client(workspace: Path) -> Iterator[TestClient]:
    options = AbServeOptions(variants=WEIGHTS, salt="test-1", reload_interval_seconds=0.2)
    router = FastapiAbServe().create_app(Workspace(workspace), options)
    with TestClient(router) as test_client:
        deadline = time.monotonic() + 60
        while test_client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, test_client.get("/ready").json()
            time.sleep(0.1)
        yield test_client


def known_users(client: TestClient, n: int) -> list[int]:
    """Customers the features snapshot knows (look-ups by user_id)."""
    features = client.app.variants["champion"].state.holder.features  # type: ignore[attr-defined]
    return sorted(int(i) for i in features.index)[:n]


def churnctl(*args: str, workspace: Path) -> Result:
    return CliRunner().invoke(app, [*args, "--profile", str(workspace / "ab.yaml"),
                                    "--workspace", str(workspace)])


def log_lines(workspace: Path) -> list[dict[str, Any]]:
    path = Workspace(workspace).state / "ab" / "assignments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_variants_are_sticky_and_named_in_answers_metrics_and_log(
    client: TestClient, workspace: Path
) -> None:
    seen: dict[int, set[str]] = {}
    versions: dict[str, set[int]] = {}
    users = known_users(client, 40)
    for _ in range(2):
        for user in users:
            answer = client.post("/predict", json={"user_id": user})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["variant"] == answer.headers["x-churnctl-variant"]
            assert body["variant"] == assign(user, WEIGHTS, "test-1")
            seen.setdefault(user, set()).add(body["variant"])
            versions.setdefault(body["variant"], set()).add(body["model_version"])
    assert all(len(v) == 1 for v in seen.values())
    assert versions == {"champion": {1}, "challenger": {2}}
    counts = Counter(next(iter(v)) for v in seen.values())
    assert counts["champion"] > 5 and counts["challenger"] > 5

    metrics = client.get("/metrics").text
    for variant in ("champion", "challenger"):
        assert (f'churn_ab_prediction_probability_count{{variant="{variant}"}} '
                f'{2.0 * counts[variant]}') in metrics
        assert f'churn_ab_model_version{{variant="{variant}"}}' in metrics
    lines = log_lines(workspace)
    assert len(lines) == 80
    assert {(ln["customer_id"], ln["variant"]) for ln in lines} == {
        (str(u), next(iter(v))) for u, v in seen.items()}

    batch = client.post("/predict/batch", json={"customers": [{"user_id": u}
                                                              for u in users[:20]]})
    assert batch.status_code == 200, batch.text
    rows = batch.json()["predictions"]
    assert [r["user_id"] for r in rows] == users[:20]
    assert all(r["variant"] == assign(r["user_id"], WEIGHTS, "test-1") for r in rows)
    refused = client.post("/predict", json={"features": {}})
    assert refused.status_code == 422 and "user_id" in refused.json()["message"]


def test_hot_reload_follows_each_variant_s_alias(client: TestClient, workspace: Path) -> None:
    challenger = next(u for u in known_users(client, 100)
                      if assign(u, WEIGHTS, "test-1") == "challenger")
    assert client.post("/predict", json={"user_id": challenger}).json()["model_version"] == 2
    result = churnctl("ab", "alias", "challenger", "1", workspace=workspace)
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 20
    while client.post("/predict", json={"user_id": challenger}).json()["model_version"] != 1:
        assert time.monotonic() < deadline, "the challenger never reloaded"
        time.sleep(0.1)


def test_report_and_promote_from_the_cli(client: TestClient, workspace: Path) -> None:
    users = known_users(client, 200)
    for user in users:
        assert client.post("/predict", json={"user_id": user}).status_code == 200
    outcomes = workspace / "outcomes.csv"
    outcomes.write_text("user_id,outcome\n" + "".join(
        f"{u},{int(u % 3 == 0)}\n" for u in users))
    result = churnctl("ab", "report", "--outcomes", str(outcomes), "--json",
                      workspace=workspace)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sum(v["assigned"] for v in report["variants"]) == len(users)
    assert report["verdict"] == "not yet"  # 200 customers: far below the horizon
    human = churnctl("ab", "report", "--outcomes", str(outcomes), workspace=workspace)
    assert human.exit_code == 0, human.output
    assert "verdict: not yet" in human.output and "challenger - champion:" in human.output

    index = ModelRegistry(Workspace(workspace).registry).index_path
    before = index.read_bytes()
    for args, message in [
        (("ab", "promote", "nobody"), "unknown variant 'nobody'"),
        (("ab", "report", "--outcomes", str(outcomes), "--outcome-column", "churned"),
         "missing column(s) churned"),
    ]:
        refused = churnctl(*args, workspace=workspace)
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert len([ln for ln in refused.output.splitlines() if ln.strip()]) == 1
    stranger = workspace / "strangers.csv"
    stranger.write_text("user_id,outcome\n99999,1\n")
    refused = churnctl("ab", "report", "--outcomes", str(stranger), workspace=workspace)
    assert refused.exit_code == 2 and "never assigned to a variant" in refused.output
    assert index.read_bytes() == before

    promoted = churnctl("ab", "promote", "challenger", "--json", workspace=workspace)
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout) == {"variant": "challenger", "champion": 2,
                                           "previous": 1}
    production = ModelRegistry(Workspace(workspace).registry).production()
    assert production is not None and production.version == 2
    again = churnctl("ab", "promote", "challenger", workspace=workspace)
    assert again.exit_code == 2 and "already the champion" in again.output
