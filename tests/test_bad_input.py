"""Bad input: one line naming the file / column / key and the fix, exit 2, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnctl.domain.generator import GeneratorConfig, generate


@pytest.fixture(scope="module")
def clean_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(GeneratorConfig(users=60, days=70, seed=3))


def _write(folder: Path, users: pd.DataFrame, events: pd.DataFrame) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    users_path, events_path = folder / "users.csv", folder / "events.csv"
    users.to_csv(users_path, index=False)
    events.to_csv(events_path, index=False)
    return users_path, events_path


def _files_run(cli, users: Path, events: Path, *extra: str):
    return cli(
        "run",
        "--only",
        "ingest",
        "--only",
        "validate",
        "--set",
        "ingest.backend=files",
        "--set",
        f"ingest.users={users}",
        "--set",
        f"ingest.events={events}",
        *extra,
    )


def _assert_clean_failure(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def _no_partial_artifacts(root: Path) -> None:
    leftovers = (
        [p for p in (root / ".churnctl").rglob("*.tmp")] if (root / ".churnctl").exists() else []
    )
    assert leftovers == []


CASES = {
    "missing_column": (lambda u, e: (u.drop(columns=["country"]), e), ("users.csv", "country")),
    "wrong_type": (
        lambda u, e: (
            u,
            e.assign(watch_minutes=e.watch_minutes.astype(object).where(e.index != 5, "lots")),
        ),
        ("events.csv", "watch_minutes", "'lots'", "row 7"),
    ),
    "blank_numeric": (
        lambda u, e: (u, e.assign(amount=e.amount.astype(object).where(e.index != 3, "  "))),
        ("events.csv", "amount", "blank"),
    ),
    "duplicate_ids": (
        lambda u, e: (pd.concat([u, u.iloc[:2]]), e),
        ("users.csv", "user_id", "unique"),
    ),
    "unknown_users": (
        lambda u, e: (u, e.assign(user_id=e.user_id.where(e.index != 0, 999999))),
        ("events.csv", "user_id", "999999"),
    ),
    "bad_category": (
        lambda u, e: (u.assign(plan=u.plan.where(u.index != 0, "gold")), e),
        ("users.csv", "plan", "gold"),
    ),
    "future_dates": (
        lambda u, e: (
            u,
            e.assign(event_time=e.event_time.where(e.index != 0, pd.Timestamp("2099-01-01"))),
        ),
        ("events.csv", "event_time", "2099"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_tables(cli, tmp_path: Path, clean_tables, case: str) -> None:
    mutate, needles = CASES[case]
    users, events = mutate(*clean_tables)
    users_path, events_path = _write(tmp_path / "in", users, events)
    _assert_clean_failure(_files_run(cli, users_path, events_path), *needles)
    _no_partial_artifacts(tmp_path)


def test_extra_columns_are_reported_and_ignored(cli, tmp_path: Path, clean_tables) -> None:
    users, events = clean_tables
    users_path, events_path = _write(tmp_path / "in", users.assign(favourite_colour="blue"), events)
    result = _files_run(cli, users_path, events_path)
    assert result.exit_code == 0, result.output
    assert "ignored extra column(s) favourite_colour" in result.stderr


def test_clean_files_pass_through_files_backend(cli, tmp_path: Path, clean_tables) -> None:
    users_path, events_path = _write(tmp_path / "in", *clean_tables)
    assert _files_run(cli, users_path, events_path).exit_code == 0


def test_missing_file(cli, tmp_path: Path) -> None:
    result = _files_run(cli, tmp_path / "nope.csv", tmp_path / "nope2.csv")
    _assert_clean_failure(result, "nope.csv", "not found")


def test_empty_file(cli, tmp_path: Path, clean_tables) -> None:
    users_path, events_path = _write(tmp_path / "in", *clean_tables)
    events_path.write_text("")
    _assert_clean_failure(_files_run(cli, users_path, events_path), "events.csv", "empty")


def test_header_only_file(cli, tmp_path: Path, clean_tables) -> None:
    users_path, events_path = _write(tmp_path / "in", *clean_tables)
    users_path.write_text(users_path.read_text().splitlines()[0] + "\n")
    _assert_clean_failure(_files_run(cli, users_path, events_path), "users.csv", "no rows")


def test_non_utf8_file(cli, tmp_path: Path, clean_tables) -> None:
    users_path, events_path = _write(tmp_path / "in", *clean_tables)
    users_path.write_bytes(users_path.read_bytes().replace(b"organic", b"org\xe9nic", 1))
    _assert_clean_failure(_files_run(cli, users_path, events_path), "users.csv", "UTF-8", "line")


def test_unknown_profile(cli) -> None:
    _assert_clean_failure(cli("run", "--profile", "v7"), "unknown profile 'v7'")


def test_unknown_backend(cli) -> None:
    _assert_clean_failure(
        cli("run", "--set", "train.backend=xgboost"), "stages.train.backend", "xgboost"
    )


def test_typo_in_option(cli) -> None:
    _assert_clean_failure(
        cli("run", "--set", "train.promotion_margn=0.1"),
        "stages.train.options.promotion_margn",
        "unknown key",
    )


def test_bad_option_value(cli) -> None:
    _assert_clean_failure(cli("run", "--set", "ingest.users=-5"), "stages.ingest.options.users")


def test_unknown_stage_in_only(cli) -> None:
    _assert_clean_failure(cli("run", "--only", "trian"), "trian")
