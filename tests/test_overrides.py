"""`--set` reaches every binding, typed by the backend's option model; empty `options:` is {}."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnctl.errors import UserError
from churnctl.profile import apply_overrides, load_profile


def test_value_that_fits_a_str_option_stays_a_string() -> None:
    # YAML alone would make this a date, which the str option rejects.
    profile = load_profile("v1", ["validate.earliest_date=2024-01-01"])
    assert profile.stages["validate"].options["earliest_date"] == "2024-01-01"


def test_int_and_bool_options_are_typed() -> None:
    profile = load_profile("v1", ["ingest.users=5000", "validate.fail_on_warning=true"])
    assert profile.stages["ingest"].options["users"] == 5000
    assert type(profile.stages["ingest"].options["users"]) is int
    assert profile.stages["validate"].options["fail_on_warning"] is True


def test_list_and_null_fall_back_to_yaml() -> None:
    profile = load_profile("v1", ["features.windows=[7,14]", "validate.as_of=null"])
    assert profile.stages["features"].options["windows"] == [7, 14]
    assert profile.stages["validate"].options["as_of"] is None


def test_tracking_binding_is_reached_and_created() -> None:
    v2 = load_profile("v2", ["tracking.tracking_uri=file:/tmp/x"])
    assert v2.tracking is not None and v2.tracking.options["tracking_uri"] == "file:/tmp/x"
    assert v2.tracking.options["experiment"] == "churnctl"  # the rest of the binding stays
    # v1 has no tracking binding: naming the backend creates it, in either order.
    v1 = load_profile("v1", ["tracking.tracking_uri=file:/tmp/x", "tracking.backend=mlflow"])
    assert v1.tracking is not None and v1.tracking.backend == "mlflow"
    assert v1.tracking.options == {"tracking_uri": "file:/tmp/x"}


def test_orchestrator_and_monitoring_are_reached() -> None:
    profile = load_profile("v2", ["orchestrator.backend=local", "monitoring.psi_warn=0.2"])
    assert profile.orchestrator.backend == "local" and profile.orchestrator.options == {}
    assert profile.monitoring is not None and profile.monitoring.options["psi_warn"] == 0.2


def test_missing_binding_and_unknown_kind_are_one_line_errors() -> None:
    with pytest.raises(UserError, match=r"--set 'tracking\.experiment=x'.*tracking\.backend="):
        load_profile("v1", ["tracking.experiment=x"])
    with pytest.raises(UserError, match=r"unknown stage or binding 'trackin'.*tracking"):
        load_profile("v1", ["trackin.experiment=x"])
    with pytest.raises(UserError, match=r"--set 'features\.windows=\[7,'.*not valid YAML") as info:
        load_profile("v1", ["features.windows=[7,"])
    assert "\n" not in str(info.value)


def test_unknown_key_is_still_reported_by_validation() -> None:
    # Reported against the flag that brought it, not the shipped profile file.
    with pytest.raises(UserError, match=r"--set 'tracking\.tracking_url=x': unknown key"):
        load_profile("v2", ["tracking.tracking_url=x"])


def test_unknown_backend_leaves_values_to_yaml() -> None:
    raw = {"stages": {"ingest": {"backend": "nosuch", "options": {}}}}
    assert apply_overrides(raw, ["ingest.users=5000"])["stages"]["ingest"]["options"] == {
        "users": 5000}


def test_empty_options_in_a_profile_that_extends_v1(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text("name: team\nextends: v1\nstages:\n  train:\n    options:\n"
                    "  validate:\n    backend: pandas\n    options:\n")
    profile = load_profile(str(path))
    assert profile.stages["train"].options["primary_metric"] == "pr_auc"  # inherited
    assert profile.stages["validate"].options["earliest_date"] == "2000-01-01"


def test_empty_options_without_extends_and_with_set(tmp_path: Path) -> None:
    stages = "".join(f"  {stage}:\n    backend: {backend}\n    options:\n" for stage, backend in (
        ("ingest", "shell"), ("validate", "pandas"), ("features", "pandas"),
        ("train", "sklearn"), ("serve", "fastapi"), ("deploy", "kubectl")))
    path = tmp_path / "bare.yaml"
    path.write_text(f"name: bare\nstages:\n{stages}")
    profile = load_profile(str(path), ["ingest.users=300"])
    assert profile.stages["ingest"].options == {"users": 300}
    assert profile.stages["train"].options == {}
