"""Same verdicts as the pandas gate: validate.pandas and validate.gx over the bad-input corpus.

Each case runs `ingest` (files) + `validate` once per validator on the same files and asserts
the same exit code and, where validate judged, the same offending table.column set of gate
errors (both write reports/validation.json in the same shape). Cases ingest refuses must be
refused identically whichever validator follows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from tests.test_bad_input import CASES

pytestmark = pytest.mark.slow

EXTRA = {
    "clean": (lambda u, e: (u, e), ()),
    "extra_column": (lambda u, e: (u.assign(favourite_colour="blue"), e), ()),
    "out_of_range_score": (
        lambda u, e: (u, e.assign(quiz_score=e.quiz_score.where(e.index != 4, 150.0))),
        ("events.csv", "quiz_score")),
    "negative_watch_minutes": (
        lambda u, e: (u, e.assign(watch_minutes=e.watch_minutes.where(e.index != 2, -3.0))),
        ("events.csv", "watch_minutes")),
    "blank_category": (
        lambda u, e: (u.assign(country=u.country.astype(object).where(u.index != 1, "")), e),
        ("users.csv", "country")),
    "paid_mismatch": (lambda u, e: (u.assign(is_paid=u.is_paid.where(u.index != 0,
                                                                    1 - u.is_paid)), e),
                      ("users.csv", "is_paid")),
    "duplicate_events": (lambda u, e: (u, pd.concat([e, e.iloc[:3]])),
                         ("events.csv", "event_id")),
}


def _before_signup(users: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Two events dated days before their user's signup: a warning, not a stop."""
    signup = events.user_id.map(users.set_index("user_id").signup_date)
    early = events.index.isin(events.index[:2])
    return users, events.assign(event_time=events.event_time.where(
        ~early, signup - pd.Timedelta(days=3, hours=-5)))


EXTRA["event_before_signup"] = (_before_signup, ())
CORPUS = {**CASES, **EXTRA}
WARNING_KINDS = ("after_signup",)  # the pandas gate's warnings (GX has more of its own)


@pytest.fixture(scope="module")
def clean_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(GeneratorConfig(users=60, days=70, seed=3))


def _warned(root: Path) -> set[tuple[str, str, str]] | None:
    report = root / "reports" / "validation.json"
    if not report.exists():
        return None
    return {(c["table"], c["column"], c["check"])
            for c in json.loads(report.read_text())["checks"]
            if not c["passed"] and c["severity"] == "warning" and c["check"] in WARNING_KINDS}


def _run(root: Path, files: Path, validator: str) -> tuple[Any, set[tuple[str, str]] | None]:
    result = CliRunner().invoke(app, [
        "run", "--workspace", str(root), "--only", "ingest", "--only", "validate",
        "--set", "ingest.backend=files", "--set", f"ingest.users={files / 'users.csv'}",
        "--set", f"ingest.events={files / 'events.csv'}",
        "--set", f"validate.backend={validator}"], catch_exceptions=False)
    report = root / "reports" / "validation.json"
    if not report.exists():
        return result, None
    checks = json.loads(report.read_text())["checks"]
    return result, {(c["table"], c["column"]) for c in checks
                    if not c["passed"] and c["severity"] == "error"}


def _errors(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_pandas_and_gx_agree(tmp_path: Path, clean_tables, case: str) -> None:
    mutate, needles = CORPUS[case]
    users, events = mutate(*clean_tables)
    files = tmp_path / "in"
    files.mkdir()
    users.to_csv(files / "users.csv", index=False)
    events.to_csv(files / "events.csv", index=False)
    pandas_result, pandas_failed = _run(tmp_path / "pandas", files, "pandas")
    gx_result, gx_failed = _run(tmp_path / "gx", files, "gx")
    assert gx_result.exit_code == pandas_result.exit_code, (pandas_result.output,
                                                            gx_result.output)
    assert gx_failed == pandas_failed  # the same offending columns (None: ingest refused)
    assert _warned(tmp_path / "gx") == _warned(tmp_path / "pandas")
    if case == "event_before_signup":
        assert _warned(tmp_path / "gx") == {("events", "event_time", "after_signup")}
    if pandas_result.exit_code == 0:
        assert not needles and gx_failed == set()
        return
    assert pandas_result.exit_code == 2
    [line] = _errors(gx_result)
    assert all(needle in line for needle in needles), line
    if pandas_failed is None:
        assert _errors(gx_result) == _errors(pandas_result)  # stopped by ingest, not validate
    else:
        assert pandas_failed and "Data Docs: " in line
