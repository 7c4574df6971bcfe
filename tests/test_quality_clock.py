"""Validate's "today" is an input (the `as_of` option or the data's last event), never the clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from pydantic import ValidationError

from churnctl.backends.validate_pandas import PandasValidator, PandasValidatorOptions
from churnctl.domain.generator import GeneratorConfig, generate
from churnctl.domain.quality import check_tables, reference_date
from churnctl.errors import GateFailed
from churnctl.stages import StageContext
from churnctl.workspace import Workspace


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(GeneratorConfig(users=60, days=60, start=dt.date(2025, 1, 1), seed=7))


def _move_clock(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    real_now = pd.Timestamp.now
    monkeypatch.setattr(pd.Timestamp, "now",
                        classmethod(lambda cls, tz=None: real_now(tz) + pd.Timedelta(days=days)))


def _date_range(results: list) -> dict[str, tuple[bool, int, str]]:
    return {r.table: (r.passed, r.failing_rows, r.detail)
            for r in results if r.check == "date_range"}


def test_result_does_not_move_with_the_wall_clock(
    tables: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    users, events = tables
    seen = []
    for days in (-365 * 30, 0, 365 * 30):  # a clock before the data, now, far after it
        _move_clock(monkeypatch, days)
        seen.append([r.to_dict() for r in check_tables(users, events)])
        seen.append([r.to_dict() for r in check_tables(users, events,
                                                       as_of=pd.Timestamp("2025-02-01"))])
    assert seen[0::2] == [seen[0]] * 3 and seen[1::2] == [seen[1]] * 3
    assert all(r["passed"] for r in seen[0] if r["check"] == "date_range")


def test_default_today_is_the_last_event_date(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    users, events = tables
    last = events["event_time"].max()
    assert reference_date(events) == last.normalize()
    late_signup = users.copy()
    late_signup.loc[0, "signup_date"] = last.normalize() + pd.Timedelta(days=2)
    ranges = _date_range(check_tables(late_signup, events, max_future_days=1))
    assert ranges["users"][:2] == (False, 1)
    assert str((last.normalize() + pd.Timedelta(days=1)).date()) in ranges["users"][2]
    assert ranges["events"][0]  # the last event itself is never "in the future"


def test_as_of_bounds_the_dates(tables: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    users, events = tables
    as_of = pd.Timestamp("2025-02-01")
    ranges = _date_range(check_tables(users, events, max_future_days=0, as_of=as_of))
    later = int((events["event_time"].dt.normalize() > as_of).sum())
    assert later > 0 and ranges["events"][:2] == (False, later)
    # An event during the as-of day itself is "today", not the future.
    noon = events.copy()
    noon["event_time"] = pd.Timestamp("2025-02-01 12:00")
    assert _date_range(check_tables(users, noon, max_future_days=0, as_of=as_of))["events"][0]


def test_as_of_option_is_an_iso_date() -> None:
    assert PandasValidatorOptions().as_of is None
    assert PandasValidatorOptions(as_of="2025-03-01").as_of == "2025-03-01"
    with pytest.raises(ValidationError, match="not an ISO date"):
        PandasValidatorOptions(as_of="yesterday")


def test_backend_passes_as_of_to_the_checks(
    tables: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    users, events = tables
    ingest_dir = tmp_path / "ingest"
    ingest_dir.mkdir()
    users.to_parquet(ingest_dir / "users.parquet")
    events.to_parquet(ingest_dir / "events.parquet")
    # Just what the validator reads from its input artifact (by file name or by table name).
    ingest = SimpleNamespace(path=ingest_dir, file=lambda name: ingest_dir / name,
                             table=lambda name: ingest_dir / f"{name}.parquet",
                             meta=lambda _name, default=None: default)
    workspace = Workspace(tmp_path / "ws").ensure()

    def run(options: PandasValidatorOptions) -> None:
        out = tmp_path / f"out-{options.as_of}"
        out.mkdir()
        ctx = StageContext("validate", options, {"ingest": ingest}, out,  # type: ignore[dict-item]
                           workspace, log=lambda _line: None)
        PandasValidator().run(ctx)

    run(PandasValidatorOptions())  # today = the data's last event: passes at any wall clock
    with pytest.raises(GateFailed, match="date_range"):
        run(PandasValidatorOptions(as_of="2025-01-15"))
    report = json.loads((workspace.reports / "validation.json").read_text())
    failed = [c for c in report["checks"] if c["check"] == "date_range" and not c["passed"]]
    assert "events" in {c["table"] for c in failed}


def test_one_event_years_ahead_is_reported_not_taken_as_today(
    tables: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    users, events = tables
    typo = events.copy()
    typo.loc[0, "event_time"] = pd.Timestamp("2099-01-01")
    assert reference_date(typo) == events["event_time"].max().normalize()
    passed, rows, detail = _date_range(check_tables(users, typo))["events"]
    assert (passed, rows) == (False, 1) and "2099" in detail and "as_of" in detail


@pytest.mark.parametrize("table", ["users", "events"])
def test_an_empty_table_fails_the_gate(tables: tuple[pd.DataFrame, pd.DataFrame],
                                       table: str) -> None:
    # Every column check passes on zero rows; an empty events artifact once reached training.
    users, events = tables
    frames = {"users": users, "events": events}
    frames[table] = frames[table].iloc[:0]
    counts = {r.table: r for r in check_tables(frames["users"], frames["events"])
              if r.check == "row_count"}
    assert set(counts) == {"users", "events"}
    assert not counts[table].passed and counts[table].severity == "error"
    assert counts[table].detail == f"the {table} table has no rows"
    other = "events" if table == "users" else "users"
    assert counts[other].passed
