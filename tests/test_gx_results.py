"""Stored GX validation results (gx/uncommitted/validations) are pruned to the newest
`keep_results` runs per suite churnctl validated; other suites' results are left alone."""

from __future__ import annotations

from pathlib import Path

from churnctl.quality_gx.project import prune_validation_results
from tests import test_gx_gate
from tests.conftest import SMALL
from tests.test_gx_gate import GX, invoke

gx_run = test_gx_gate.gx_run  # the module-scoped ingest + validate run with GX
gx_copy = test_gx_gate.gx_copy

STORE = Path("gx") / "uncommitted" / "validations"


def _runs(root: Path, suite: str) -> list[str]:
    """Run times of a suite's stored results, oldest first."""
    return sorted(p.parent.name for p in (root / STORE / suite).rglob("*.json"))


def _store(root: Path, suite: str, run_name: str, run_time: str) -> None:
    folder = root / STORE / suite / run_name / run_time
    folder.mkdir(parents=True)
    (folder / "batch.json").write_text("{}")


def test_prune_keeps_the_newest_runs_of_the_given_suites(tmp_path: Path) -> None:
    times = [f"20261201T12{minute:02d}00.000000Z" for minute in range(6)]
    for number, time in enumerate(times):
        _store(tmp_path, "churnctl_events", "__none__" if number % 2 else "nightly", time)
        _store(tmp_path, "team_suite", "__none__", time)
    assert prune_validation_results(tmp_path, {"churnctl_events", "absent"}, keep=2) == 4
    assert _runs(tmp_path, "churnctl_events") == times[-2:]
    assert _runs(tmp_path, "team_suite") == times  # not validated by churnctl: untouched
    assert prune_validation_results(tmp_path, {"churnctl_events"}, keep=2) == 0


def test_a_run_prunes_older_results_to_keep_results(gx_copy: Path) -> None:
    _store(gx_copy, "team_suite", "__none__", "20200101T000000.000000Z")
    first = _runs(gx_copy, "churnctl_events")
    assert len(first) == 1  # the module's run
    for _ in range(2):
        result = invoke(gx_copy, "run", *GX, *SMALL, "--force", "--set",
                        "validate.keep_results=2")
        assert result.exit_code == 0, result.output
    for suite in ("churnctl_users", "churnctl_events"):
        kept = _runs(gx_copy, suite)
        assert len(kept) == 2 and first[0] < kept[0]  # the oldest went, the two newest stay
    assert _runs(gx_copy, "team_suite") == ["20200101T000000.000000Z"]
