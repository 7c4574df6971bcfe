"""Profiles: shipped ones load, user ones extend, and every mistake names file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churnctl.errors import UserError
from churnctl.profile import (
    ProfileError,
    apply_overrides,
    diff_profiles,
    load_profile,
)
from churnctl.profile_files import shipped_names


def test_shipped_profiles_load_and_v1_is_complete() -> None:
    assert {"v1", "v2", "v3", "v4"} <= set(shipped_names())
    v1 = load_profile("v1")
    assert {s: b.backend for s, b in v1.stages.items()} == {
        "ingest": "shell",
        "validate": "pandas",
        "features": "pandas",
        "train": "sklearn",
        "serve": "fastapi",
        "deploy": "kubectl",
    }


def test_v2_extends_v1_and_diff_names_the_switch() -> None:
    v1, v2 = load_profile("v1"), load_profile("v2")
    assert v2.stages["train"].options == v1.stages["train"].options
    changes = {row["binding"]: row for row in diff_profiles(v1, v2)}
    assert changes["orchestrator"]["from"] == "local" and changes["orchestrator"]["to"] == "dvc"
    assert changes["tracking"]["to"] == "mlflow"
    assert changes["train"]["from"] == changes["train"]["to"] == "sklearn"


def test_user_profile_extends_and_overrides_options(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(
        "name: team\nextends: v1\nstages:\n  train:\n    options: {promotion_margin: 0.02}\n"
    )
    profile = load_profile(str(path))
    assert profile.stages["train"].options["promotion_margin"] == 0.02
    assert profile.stages["train"].options["primary_metric"] == "pr_auc"  # inherited


def test_all_problems_reported_at_once_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nextends: v1\nstagez: {}\nstages:\n"
        "  train:\n    options: {promotion_margn: 0.02}\n"
        "  ingest:\n    backend: nosuch\n"
    )
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    problems = info.value.problems
    assert any("stagez" in p and "unknown key" in p for p in problems), problems
    assert any("stages.train.options.promotion_margn" in p for p in problems), problems
    assert any("stages.ingest.backend" in p and "nosuch" in p for p in problems), problems
    assert all(str(path) in p for p in problems)


def test_unknown_profile_name_lists_shipped_ones() -> None:
    with pytest.raises(UserError, match=r"unknown profile 'v9'.*v1"):
        load_profile("v9")


def test_set_backend_replaces_options_then_applies_keys() -> None:
    raw = {"stages": {"ingest": {"backend": "shell", "options": {"users": 10, "days": 50}}}}
    out = apply_overrides(
        raw, ["ingest.users=a.csv", "ingest.backend=files", "ingest.events=b.csv"]
    )
    assert out["stages"]["ingest"] == {
        "backend": "files",
        "options": {"users": "a.csv", "events": "b.csv"},
    }
    with pytest.raises(UserError, match=r"STAGE\.KEY=VALUE"):
        apply_overrides(raw, ["nodot=1"])


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("name: b\nextends: a.yaml\n")
    with pytest.raises(UserError, match="cycle"):
        load_profile(str(tmp_path / "a.yaml"))


def test_profile_commands(cli) -> None:
    listed = cli("profile", "list", "--json")
    assert listed.exit_code == 0
    assert [p["name"] for p in json.loads(listed.stdout)][:4] == ["v1", "v2", "v3", "v4"]
    shown = cli("profile", "show", "v2", "--json")
    assert json.loads(shown.stdout)["orchestrator"]["backend"] == "dvc"
    diff = cli("profile", "diff", "v2", "v3", "--json")
    changes = {c["binding"]: c for c in json.loads(diff.stdout)["changes"]}
    assert changes["validate"]["to"] == "gx" and changes["validate"]["extra"] == "gx"
    # A replaced backend is one change with its own options, not a column of `old -> None`.
    assert changes["validate"]["options"] == {}
    assert changes["validate"]["options_of_new_backend"] == load_profile("v3").stages[
        "validate"].options
    table = cli("profile", "diff", "v2", "v3").stdout
    assert "None" not in table and "pandas -> gx" in table
    schema = cli("profile", "schema")
    assert "stages" in json.loads(schema.stdout)["properties"]
    assert cli("profile", "validate", "v1").exit_code == 0


@pytest.mark.parametrize(("backend", "kind"), [("gx", "null_fraction"), ("gx-table", "class_rows"),
                                               ("gx-spark", "null_fraction")])
def test_a_mistyped_gx_severity_kind_is_a_profile_error(cli, tmp_path: Path, backend: str,
                                                        kind: str) -> None:
    path = tmp_path / "severity.yaml"
    for key, code in ((kind, 0), (kind + "s", 2)):
        path.write_text(f"name: severity\nextends: v3\nstages:\n  validate:\n    backend: "
                        f"{backend}\n    options: {{severity: {{{key}: warning}}}}\n")
        result = cli("profile", "validate", str(path))
        assert result.exit_code == code, result.output
    assert f"stages.validate.options.severity: unknown kind(s) {kind}s; kinds: " in result.stderr
    assert kind in result.stderr.rpartition("kinds: ")[2]


def test_profile_validate_bad_file_exits_2(cli, tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\nextends: v1\nstages:\n  features:\n    options: {windowz: [7]}\n")
    result = cli("profile", "validate", str(path))
    assert result.exit_code == 2
    assert "stages.features.options.windowz: unknown key" in result.stderr
