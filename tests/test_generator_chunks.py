"""The chunked generator: the same data whatever the chunk size, generate()'s distributions,
whole-block chunk boundaries, and `churnctl data generate --chunk-users`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from churnctl.domain.generator_chunks import (
    BLOCK_USERS,
    chunk_plan,
    iter_chunks,
    write_chunked,
)

CONFIG = GeneratorConfig(users=12_500, days=50, seed=7)


def _read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_parquet(folder / "users.parquet"),
            pd.read_parquet(folder / "events.parquet"))


def _in_memory(config: GeneratorConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All users as one chunk, never written: the frames the part files must hold."""
    [(_, users, events)] = list(iter_chunks(config, config.users))
    return users, events


def test_the_data_does_not_depend_on_the_chunk_size(tmp_path: Path) -> None:
    three = write_chunked(CONFIG, tmp_path / "three", chunk_users=5_000)
    one = write_chunked(CONFIG, tmp_path / "one", chunk_users=20_000)
    assert (three["parts"], one["parts"]) == (3, 1)
    assert len(list((tmp_path / "three" / "events.parquet").glob("part-*.parquet"))) == 3
    # Written a block at a time (what bounds the memory): a row group per block.
    import pyarrow.parquet as pq

    whole = pq.ParquetFile(tmp_path / "one" / "events.parquet" / "part-00000.parquet")
    assert whole.metadata.num_row_groups == 3
    users, events = _in_memory(CONFIG)
    for folder in ("three", "one"):
        read_users, read_events = _read(tmp_path / folder)
        pd.testing.assert_frame_equal(read_users, users, check_dtype=False)
        pd.testing.assert_frame_equal(read_events, events, check_dtype=False)
        assert list(read_events.dtypes.astype(str)) == list(
            pd.read_parquet(tmp_path / "one" / "events.parquet").dtypes.astype(str))
    assert three["events"] == len(events) and three["users"] == CONFIG.users
    # A different seed is different data; the same seed again is the same data.
    other = _in_memory(GeneratorConfig(users=12_500, days=50, seed=8))[1]
    assert len(other) != len(events) or not other.equals(events)
    pd.testing.assert_frame_equal(_in_memory(CONFIG)[1], events)


def test_ids_are_dense_unique_and_each_part_holds_its_own_users(tmp_path: Path) -> None:
    write_chunked(CONFIG, tmp_path, chunk_users=5_000)
    users, events = _read(tmp_path)
    assert users["user_id"].tolist() == list(range(1, CONFIG.users + 1))
    assert sorted(events["event_id"]) == list(range(1, len(events) + 1))
    for index, chunk in enumerate(chunk_plan(CONFIG.users, 5_000)):
        part = pd.read_parquet(tmp_path / "events.parquet" / f"part-{index:05d}.parquet")
        assert part["user_id"].between(chunk.first_user,
                                       chunk.first_user + chunk.users - 1).all()
        # Within a block, time order; ids count up block after block.
        assert part["event_id"].is_monotonic_increasing
    start = pd.Timestamp(CONFIG.start)
    assert events["event_time"].between(start, start + pd.Timedelta(days=CONFIG.days)).all()
    signup = events["user_id"].map(users.set_index("user_id")["signup_date"])
    assert (events["event_time"] >= signup).all()


def test_same_schema_and_distributions_as_generate() -> None:
    config = GeneratorConfig(users=6_000, days=120, seed=3)
    users, events = generate(config)
    c_users, c_events = _in_memory(config)
    assert list(c_users.columns) == list(users.columns)
    assert list(c_events.columns) == list(events.columns)
    assert [str(t) for t in c_events.dtypes] == [str(t) for t in events.dtypes]
    assert [str(t) for t in c_users.dtypes] == [str(t) for t in users.dtypes]

    def mix(frame: pd.DataFrame, column: str) -> pd.Series:
        return frame[column].value_counts(normalize=True).sort_index()

    # Per user, the events are independent draws: 6,000 users give shares within ~1%.
    assert abs(len(c_events) / len(events) - 1) < 0.05
    pd.testing.assert_series_equal(mix(c_events, "event_type"), mix(events, "event_type"),
                                   atol=0.01, check_names=False)
    for column in ("plan", "country", "marketing_source"):
        pd.testing.assert_series_equal(mix(c_users, column), mix(users, column), atol=0.03,
                                       check_names=False)
    for column in ("watch_minutes", "quiz_score", "amount"):
        assert abs(c_events[column].mean() / events[column].mean() - 1) < 0.05, column

    def quiet(frame: pd.DataFrame) -> float:  # users without activity in the last 30 days
        day = (frame["event_time"] - pd.Timestamp(config.start)) // pd.Timedelta(days=1)
        active = set(frame["user_id"][day < config.days - 30])
        late = set(frame["user_id"][day >= config.days - 30])
        return len(active - late) / len(active)

    assert abs(quiet(c_events) - quiet(events)) < 0.03


@settings(max_examples=200, deadline=None)
@given(users=st.integers(1, 20 * BLOCK_USERS), chunk_users=st.integers(1, 8 * BLOCK_USERS))
def test_chunks_are_whole_blocks_covering_every_user_once(users: int, chunk_users: int) -> None:
    chunks = chunk_plan(users, chunk_users)
    per_chunk = -(-chunk_users // BLOCK_USERS)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].first_user == 1 and chunks[0].first_block == 0
    for before, after in itertools.pairwise(chunks):
        assert after.first_user == before.first_user + before.users  # no gap, no overlap
        assert after.first_block == before.first_block + before.blocks
        assert before.blocks == per_chunk and before.users == per_chunk * BLOCK_USERS
    last = chunks[-1]
    assert last.first_user + last.users - 1 == users
    assert 1 <= last.blocks <= per_chunk and 1 <= last.users <= per_chunk * BLOCK_USERS
    assert len(chunks) == -(-users // (per_chunk * BLOCK_USERS))


def test_a_block_is_the_same_wherever_its_chunk_starts() -> None:
    """The last user of a block and the first of the next land in different chunks at one
    block per chunk, in one chunk at two: the rows around the boundary are the same."""
    config = GeneratorConfig(users=2 * BLOCK_USERS, days=45, seed=1)
    split = pd.concat([e for _, _, e in iter_chunks(config, BLOCK_USERS)], ignore_index=True)
    whole = _in_memory(config)[1]
    near = whole["user_id"].between(BLOCK_USERS - 2, BLOCK_USERS + 3)
    pd.testing.assert_frame_equal(split[near], whole[near])
    assert set(whole.loc[near, "user_id"]) == set(range(BLOCK_USERS - 2, BLOCK_USERS + 4))


def test_cli_writes_part_directories_and_refuses_csv(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "big"
    args = ["data", "generate", "--users", "7500", "--days", "45", "--out", str(out),
            "--chunk-users", "100", "--json"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["users"], summary["parts"], summary["chunk_users"]) == (7500, 2, 5000)
    first = pd.read_parquet(out / "events.parquet")
    assert len(first) == summary["events"]
    again = runner.invoke(app, args, catch_exceptions=False)  # replaces, same data
    assert again.exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"), first)
    assert sorted(p.name for p in out.iterdir()) == ["events.parquet", "users.parquet"]
    bad = runner.invoke(app, ["data", "generate", "--chunk-users", "10", "--format", "csv",
                              "--out", str(tmp_path / "csv")])
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --chunk-users writes Parquet part directories; drop --format csv"]
    assert not (tmp_path / "csv").exists()


def test_memory_is_one_chunk_not_the_data_set() -> None:
    """iter_chunks hands out one chunk at a time: the frames of a chunk are released before
    the next is made (the generator holds no reference to an earlier chunk's frames)."""
    import gc
    import weakref

    config = GeneratorConfig(users=3 * BLOCK_USERS, days=45, seed=2)
    chunks = iter_chunks(config, BLOCK_USERS)
    _, _, events = next(chunks)
    first = weakref.ref(events)
    del events
    next(chunks)
    gc.collect()
    assert first() is None
