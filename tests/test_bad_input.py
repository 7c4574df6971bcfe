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
    "infinite_number": (
        lambda u, e: (u, e.assign(amount=e.amount.astype(object).where(e.index != 4, "inf"))),
        ("events.csv", "amount", "infinite", "'inf'", "row 6"),
    ),
    "overflowing_number": (
        lambda u, e: (u, e.assign(watch_minutes=e.watch_minutes.astype(object)
                                  .where(e.index != 2, "1e308"))),
        ("events.csv", "watch_minutes", "implausibly large", "'1e308'"),
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
    # A bad key or value given with --set is the flag's fault, not the shipped profile's.
    result = cli("run", "--set", "train.promotion_margn=0.1")
    _assert_clean_failure(result, "--set 'train.promotion_margn=0.1'", "unknown key")
    assert "profiles/v1.yaml" not in result.stderr


def test_bad_option_value(cli) -> None:
    _assert_clean_failure(cli("run", "--set", "ingest.users=-5"), "--set 'ingest.users=-5'",
                          "greater than 0")


def test_bad_value_in_a_profile_file_names_the_file(cli, tmp_path: Path) -> None:
    profile = tmp_path / "team.yaml"
    profile.write_text("name: team\nextends: v1\nstages:\n  ingest:\n    options: {users: -5}\n")
    _assert_clean_failure(cli("run", "--profile", str(profile)), "team.yaml",
                          "stages.ingest.options.users")


def test_empty_parquet_table_is_called_empty(cli, tmp_path: Path, clean_tables) -> None:
    users, events = clean_tables
    _, events_path = _write(tmp_path / "in", users, events)
    empty = tmp_path / "in" / "users.parquet"
    users.iloc[:0].to_parquet(empty)
    _assert_clean_failure(_files_run(cli, empty, events_path), "users.parquet", "has no rows")


def test_a_huge_cell_is_not_echoed_whole(cli, tmp_path: Path, clean_tables) -> None:
    users, events = clean_tables
    cell = "x" * 5_000_000
    bad = events.assign(watch_minutes=events.watch_minutes.astype(object)
                        .where(events.index != 1, cell))
    users_path, events_path = _write(tmp_path / "in", users, bad)
    result = _files_run(cli, users_path, events_path)
    _assert_clean_failure(result, "events.csv", "watch_minutes", "row 3")
    assert len(result.stderr) < 2_000
    records = list((tmp_path / ".churnctl" / "runs").glob("*.json"))
    assert records and all(p.stat().st_size < 100_000 for p in records)


def test_an_unreadable_input_file_is_one_line(cli, tmp_path: Path, clean_tables,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads every file, so the denial is simulated where churnctl first opens the file.
    users_path, events_path = _write(tmp_path / "in", *clean_tables)

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("churnctl.cache_key.file_sha256", denied)
    _assert_clean_failure(_files_run(cli, users_path, events_path), "permission denied",
                          "users.csv")


def test_unknown_stage_in_only(cli) -> None:
    _assert_clean_failure(cli("run", "--only", "trian"), "trian")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefg", "bcdefgh", strict=True))


@pytest.mark.parametrize("command", [("profile", "validate"), ("profile", "show"),
                                     ("profile", "diff", "v1"), ("plan", "--profile")])
def test_an_anchor_bomb_is_refused_by_every_command(cli, tmp_path: Path, command) -> None:
    profile = tmp_path / "bomb.yaml"
    options = "".join(f"      {line}\n" for line in BOMB.splitlines())
    profile.write_text("name: bomb\nextends: v1\nstages:\n  validate:\n    backend: gx\n"
                       f"    options:\n{options}")
    _assert_clean_failure(cli(*command, str(profile)), "bomb.yaml", "expands to more than")


def test_an_anchor_bomb_in_a_set_value_is_refused(cli) -> None:
    value = "{" + BOMB.replace("\n", ", ").rstrip(", ") + "}"
    _assert_clean_failure(cli("plan", "--set", f"train.seed={value}"), "--set", "expands")


def test_a_huge_category_is_not_copied_into_the_validation_report(cli, tmp_path: Path,
                                                                  clean_tables) -> None:
    users, events = clean_tables
    huge = users.assign(plan=users.plan.where(users.index != 0, "g" * 1_000_000))
    users_path, events_path = _write(tmp_path / "in", huge, events)
    result = _files_run(cli, users_path, events_path)
    _assert_clean_failure(result, "users.csv", "plan")
    assert len(result.stderr) < 2_000
    assert (tmp_path / "reports" / "validation.json").stat().st_size < 50_000
