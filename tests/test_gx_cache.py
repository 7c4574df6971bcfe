"""validate.gx's cache key covers what a user wrote into gx/: their expectations (in churnctl's
suites or their own) and the validation definitions they added to churnctl's checkpoints.

What churnctl regenerates itself (its own expectations, checkpoints and validation
definitions) is covered by the options and the code, so writing it never reruns the stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from churnctl.quality_gx.inputs import project_digests
from tests import test_gx_gate
from tests.conftest import SMALL
from tests.test_gx_gate import GX, invoke

# The module-scoped run of ingest + validate with GX, and a copy of it per test.
gx_run = test_gx_gate.gx_run
gx_copy = test_gx_gate.gx_copy

SUITE = Path("gx") / "expectations" / "churnctl_events.json"


def _plan(root: Path, *extra: str) -> dict[str, str]:
    result = invoke(root, "plan", *GX, *SMALL, *extra, "--json")
    assert result.exit_code == 0, result.output
    return {s["stage"]: s["reason"] if s["status"] != "cached" else "cached"
            for s in json.loads(result.stdout)["stages"]}


def _run(root: Path, *extra: str) -> dict[str, Any]:
    result = invoke(root, "run", *GX, *SMALL, *extra, "--json")
    assert result.exit_code == 0, result.output
    return next(s for s in json.loads(result.stdout)["stages"] if s["name"] == "validate")


def _add_user_expectation(root: Path, max_value: float) -> None:
    path = root / SUITE
    suite = json.loads(path.read_text())
    theirs = [e for e in suite["expectations"] if e.get("meta", {}).get("owner") == "team"]
    if theirs:
        theirs[0]["kwargs"]["max_value"] = max_value
    else:
        suite["expectations"].append({
            "type": "expect_column_values_to_be_between", "severity": "warning",
            "kwargs": {"column": "watch_minutes", "min_value": 0, "max_value": max_value},
            "meta": {"owner": "team"}})
    path.write_text(json.dumps(suite, indent=2))


def _team_check(root: Path) -> dict[str, Any]:
    report = json.loads((root / "reports" / "validation.json").read_text())
    [check] = [c for c in report["checks"] if c["check"] == "expect_column_values_to_be_between"]
    return check


def test_what_churnctl_wrote_into_gx_is_no_input(gx_copy: Path) -> None:
    # The first run wrote the whole project; its key had no gx/ in it and still matches.
    assert project_digests(gx_copy) == {}
    assert "gx/" not in _plan(gx_copy)["validate"]


def test_editing_a_users_expectation_reruns_validate_with_its_verdict(gx_copy: Path) -> None:
    _add_user_expectation(gx_copy, max_value=100000)
    assert _plan(gx_copy)["validate"] == f"input file changed: {SUITE.as_posix()}"
    assert _run(gx_copy)["status"] == "ran"
    assert _team_check(gx_copy)["passed"]
    assert _plan(gx_copy)["validate"] == "cached"  # the run left its own key matching
    _add_user_expectation(gx_copy, max_value=1)  # now most video watches are too long
    validate = _run(gx_copy)
    assert validate["status"] == "ran"
    check = _team_check(gx_copy)
    assert not check["passed"] and check["severity"] == "warning" and check["failing_rows"] > 0
    assert any(w.startswith("events.watch_minutes:") for w in validate["summary"]["warnings"])


def test_editing_the_users_own_suite_reruns_validate(gx_copy: Path) -> None:
    team = gx_copy / "gx" / "expectations" / "team_suite.json"
    team.write_text(json.dumps({"name": "team_suite", "meta": {}, "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "plan"}}]}))
    assert _plan(gx_copy)["validate"] == "input file changed: gx/expectations/team_suite.json"
    before = project_digests(gx_copy)
    team.write_text(team.read_text().replace('"plan"', '"country"'))
    assert project_digests(gx_copy) != before


def test_churnctl_rewriting_its_suite_keeps_the_users_digest(gx_copy: Path) -> None:
    _add_user_expectation(gx_copy, max_value=100000)
    before_text = (gx_copy / SUITE).read_text()
    before = project_digests(gx_copy)
    # Another row bound changes churnctl's own expectations: GX rewrites the whole suite file
    # (the user's expectation gets an id and GX's defaults), the user's part stays the same.
    assert _run(gx_copy, "--set", "validate.min_rows=2")["status"] == "ran"
    assert (gx_copy / SUITE).read_text() != before_text
    assert project_digests(gx_copy) == before
    assert _plan(gx_copy, "--set", "validate.min_rows=2")["validate"] == "cached"


def test_dvc_sees_the_users_gx_edits_as_params(gx_copy: Path) -> None:
    from churnctl.orchestrators.dvc_pipeline import stage_params
    from churnctl.orchestrators.stage_exec import INPUT_FILES_KEY
    from churnctl.profile import load_profile
    from churnctl.runner import Runner
    from churnctl.workspace import Workspace

    _add_user_expectation(gx_copy, max_value=100000)
    workspace = Workspace(gx_copy)
    runner = Runner(load_profile("v3", ["features.backend=pandas"]), workspace,
                    log=lambda _m: None)
    step = next(s for s in runner.plan() if s.stage == "validate")
    files = stage_params(step, workspace)[INPUT_FILES_KEY]
    assert files == project_digests(gx_copy) and SUITE.as_posix() in files
