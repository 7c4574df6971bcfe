"""`churnctl profile upgrade`: the plan, the gates and the churnctl.yaml write.

The end-to-end tests run real pipelines: a v1 project is upgraded to v2 with --gate --write,
and a profile whose model is crippled (one-day feature windows) is refused by the model gate
with churnctl.yaml untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from churnctl.errors import UserError
from churnctl.profile import load_profile
from churnctl.upgrade.gate import require_runnable
from churnctl.upgrade.plan import upgrade_plan
from churnctl.upgrade.project_file import with_profile, write_profile
from churnctl.upgrade.render import markdown

SMALL = ["--set", "ingest.users=400", "--set", "ingest.days=100"]
PROJECT = "# our churn project\nprofile: v1  # picked in 2025\ndebug: false\nowner: data-team\n"


def test_plan_v1_to_v2_shows_backend_changes_once() -> None:
    plan = upgrade_plan(load_profile("v1"), load_profile("v2"))
    rows = {r["binding"]: r for r in plan.changes}
    assert rows["orchestrator"]["from"] == "local" and rows["orchestrator"]["to"] == "dvc"
    # A backend change is one row with the new backend's options, never `old -> None`s.
    assert rows["orchestrator"]["options"] == {}
    assert rows["orchestrator"]["options_of_new_backend"]["remote"] == ".dvc-remote"
    assert rows["tracking"]["from"] is None and rows["tracking"]["to"] == "mlflow"
    assert "ingest" not in rows and "train" not in rows  # unchanged bindings are not listed
    assert {e["extra"] for e in plan.extras} == {"dvc", "mlflow"}
    assert {v["name"] for v in plan.env} >= {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_PASSWORD"}
    assert any(v["secret"] for v in plan.env if v["name"] == "MLFLOW_TRACKING_PASSWORD")
    assert {s["name"] for s in plan.services} >= {"DVC remote", "Prometheus"}
    assert plan.kubernetes["appear"] == [] and plan.kubernetes["unchanged"] > 0


def test_plan_v2_to_v3_lists_scan_and_tracing() -> None:
    plan = upgrade_plan(load_profile("v2"), load_profile("v3"), render=False)
    rows = {r["binding"]: r for r in plan.changes}
    assert rows["features"]["to"] == "feast" and rows["validate"]["to"] == "gx"
    assert rows["scan"]["options_of_new_backend"]["fail_on"] == "HIGH"
    assert {"trivy", "semgrep"} <= {b["name"] for b in plan.binaries}
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in {v["name"] for v in plan.env}
    assert "MLFLOW_TRACKING_URI" not in {v["name"] for v in plan.env}  # not new in v3
    text = markdown(plan)
    assert text.startswith("<!-- churnctl-profile-upgrade -->")
    assert "| features | pandas -> feast |" in text


def test_a_password_in_an_option_is_never_printed() -> None:
    target = load_profile("v3", ["features.online_store=redis",
                                 "features.redis_connection=127.0.0.1:6379,password=s3cret"])
    plan = upgrade_plan(load_profile("v2"), target, render=False)
    text = json.dumps(plan.to_dict()) + markdown(plan)
    assert "s3cret" not in text
    assert "password=***" in text
    # The backend's own services hook names what to run: Redis, at its host:port.
    assert {"name": "Redis", "why": "Feast online store at 127.0.0.1:6379"} in plan.services


def test_kubernetes_objects_that_appear_are_listed(tmp_path: Path) -> None:
    """A target deploy overlay with one more object: rendered, and named as appearing."""
    import shutil

    from churnctl.deploy.render import k8s_root

    root = tmp_path / "k8s"
    shutil.copytree(k8s_root(), root)
    extra = root / "overlays" / "staging" / "extra-configmap.yaml"
    extra.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: upgrade-extra}\n")
    kustomization = root / "overlays" / "staging" / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    data["resources"] = [*data.get("resources", []), "extra-configmap.yaml"]
    kustomization.write_text(yaml.safe_dump(data))
    target = load_profile("v2", [f"deploy.manifests_dir={root}"])
    plan = upgrade_plan(load_profile("v1"), target)
    assert [name for name in plan.kubernetes["appear"] if "upgrade-extra" in name]
    assert plan.kubernetes["go_away"] == []


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(
    # YAML 1.1 reads keys like `no`, `on`, `null` as other types: plain string keys only.
    lambda k: k != "profile" and yaml.safe_load(k) == k), st.integers(0, 99) | st.booleans(),
    max_size=4),
    st.sampled_from(["v1", "v2", "profiles/team.yaml", "my team.yaml"]), st.booleans())
def test_only_the_profile_value_changes(others: dict, value: str, present: bool) -> None:
    lines = ["# project settings"] + [f"{k}: {json.dumps(v)}" for k, v in others.items()]
    if present:
        lines.insert(1 + len(others) // 2, "profile: v1   # the team's")
    text = "\n".join(lines) + "\n"
    new = with_profile(text, value)
    assert yaml.safe_load(new) == {**others, "profile": value}
    kept = [line for line in new.splitlines() if not line.startswith("profile:")]
    assert kept == [line for line in text.splitlines() if not line.startswith("profile:")]
    if present:
        assert "# the team's" in new


def test_write_refuses_a_file_it_cannot_edit_safely(tmp_path: Path) -> None:
    (tmp_path / "churnctl.yaml").write_text("profile: v1\nprofile: v2\n")
    with pytest.raises(UserError, match="appears 2 times"):
        write_profile(tmp_path, "v3")
    assert (tmp_path / "churnctl.yaml").read_text() == "profile: v1\nprofile: v2\n"


def test_planned_target_backend_cannot_gate(tmp_path: Path) -> None:
    # Every backend of v4 is implemented now; orchestrator.kubeflow is still planned.
    (tmp_path / "kf.yaml").write_text("name: kf\nextends: v3\norchestrator: {backend: kubeflow}\n")
    planned = "gate cannot run: orchestrator backend 'kubeflow' of kf is planned"
    with pytest.raises(UserError, match=planned):
        require_runnable(load_profile(str(tmp_path / "kf.yaml")))


def test_upgrade_to_the_current_profile_is_bad_input(cli, tmp_path: Path) -> None:
    (tmp_path / "churnctl.yaml").write_text(PROJECT)
    result = cli("profile", "upgrade", "--to", "v1")
    assert result.exit_code == 2
    assert "on v1 already" in result.stderr


def test_unknown_target_is_bad_input(cli, tmp_path: Path) -> None:
    result = cli("profile", "upgrade", "--to", "v7")
    assert result.exit_code == 2 and "unknown profile 'v7'" in result.stderr


def test_target_whose_extra_is_missing_names_the_pip_line(cli, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The feast module made unfindable: the gate refuses before running anything."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "feast" else real(name, *a))
    result = cli("profile", "upgrade", "--to", "v3", "--gate", "--scratch", "gate-runs")
    assert result.exit_code == 2
    assert "pip install 'churnctl[feast]'" in result.stderr
    assert not (tmp_path / "gate-runs").exists()  # refused before any run


def test_gate_cannot_run_when_the_current_profile_fails(cli, tmp_path: Path) -> None:
    (tmp_path / "churnctl.yaml").write_text(PROJECT)
    result = cli("profile", "upgrade", "--to", "v2", "--gate", "--set", "ingest.users=300",
                 "--set", "ingest.days=90")
    assert result.exit_code == 2, result.output
    assert "gate cannot run: the current profile v1 fails at features" in result.stderr
    assert (tmp_path / "churnctl.yaml").read_text() == PROJECT


@pytest.mark.slow
def test_v1_project_upgrades_to_v2_behind_the_gates(cli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The team's MLflow: the gate's scratch runs must not register models in it (nor take
    # its champion for theirs, which failed this test when an earlier run left it set).
    team_store = tmp_path / "team" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{team_store}")
    (tmp_path / "churnctl.yaml").write_text(PROJECT)
    result = cli("profile", "upgrade", "--to", "v2", "--gate", "--write", "--format", "json",
                 *SMALL)
    assert result.exit_code == 0, result.output
    assert not team_store.exists()
    plan = json.loads(result.stdout)
    gates = {g["name"]: g for g in plan["gates"]}
    assert gates["validate"]["passed"] is True
    assert gates["features"]["passed"] is None  # pandas in both: nothing to compare
    assert gates["model"]["passed"] is True and "not worse" in gates["model"]["detail"]
    assert gates["scan"]["passed"] is None  # v2 has no scan binding
    written = (tmp_path / "churnctl.yaml").read_text()
    assert written == PROJECT.replace("profile: v1", "profile: v2")
    # The project now runs v2: the settings read it back.
    from churnctl.settings import resolve_profile_name
    from churnctl.workspace import Workspace

    assert resolve_profile_name(None, Workspace(tmp_path)) == "v2"


@pytest.mark.slow
def test_a_worse_model_is_refused_and_nothing_is_written(cli, tmp_path: Path) -> None:
    (tmp_path / "churnctl.yaml").write_text(PROJECT)
    (tmp_path / "worse.yaml").write_text(
        "name: worse\nextends: v2\n"
        "# one-day windows: the model loses most of what predicts churn\n"
        "stages:\n  features:\n    options: {windows: [1]}\n")
    result = cli("profile", "upgrade", "--to", "worse.yaml", "--gate", "--write",
                 "--format", "markdown", *SMALL)
    assert result.exit_code == 1, result.output
    assert "gate failed: model" in result.stderr
    assert "churnctl.yaml not changed" in result.stderr
    assert "| model | FAIL |" in result.stdout
    # Judged on the same rows (every test row of v1), not refused as incomparable.
    assert "worse than v1 beyond the margin" in result.stdout
    assert (tmp_path / "churnctl.yaml").read_text() == PROJECT


@pytest.mark.slow
def test_v1_project_upgrades_to_v3_with_the_features_parity_and_scan_gates(
        cli, tmp_path: Path) -> None:
    """v3 swaps features to Feast (the parity gate compares them) and scans (the scan gate)."""
    pytest.importorskip("feast", reason="v3's features backend needs churnctl[feast]")
    pytest.importorskip("great_expectations", reason="v3's validate needs churnctl[gx]")
    (tmp_path / "churnctl.yaml").write_text(PROJECT)
    result = cli("profile", "upgrade", "--to", "v3", "--gate", "--write", "--format", "json",
                 *SMALL)
    assert result.exit_code == 0, result.output
    gates = {g["name"]: g for g in json.loads(result.stdout)["gates"]}
    assert gates["features"]["passed"] is True and "pandas -> feast" in gates["features"]["detail"]
    assert gates["validate"]["passed"] is True and "gx" in gates["validate"]["detail"]
    assert gates["model"]["passed"] is True
    assert gates["scan"]["passed"] is True and "clean at HIGH" in gates["scan"]["detail"]
    assert (tmp_path / "churnctl.yaml").read_text() == PROJECT.replace("profile: v1",
                                                                       "profile: v3")


def test_scratch_runs_keep_their_tracking_store_inside_their_workspace() -> None:
    from churnctl.parity import scratch_tracking

    team = load_profile("v2")
    team = team.model_copy(update={"tracking": team.tracking.model_copy(update={
        "options": {**team.tracking.options, "tracking_uri": "http://mlflow.team:5000",
                    "experiment": "churn"}})})
    scratch = scratch_tracking(team)
    assert "tracking_uri" not in scratch.tracking.options
    assert scratch.tracking.options["experiment"] == "churn"
    assert team.tracking.options["tracking_uri"] == "http://mlflow.team:5000"  # a copy
    assert scratch_tracking(load_profile("v1")).tracking is None
