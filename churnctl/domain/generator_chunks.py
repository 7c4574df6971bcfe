"""The generator at sizes that do not fit one frame: users in chunks, each chunk's users and
events written as one Parquet part file a block at a time (a row group per block), so peak
memory is one block's, not the chunk's or the data set's.

The random stream is per *block* of BLOCK_USERS users (numpy's SeedSequence of (seed, block
index)), not per chunk: a chunk is a run of whole blocks, so the data is the same whatever
the chunk size (only how the rows are split into part files differs). It is not the data of
`generate()`, whose one stream runs through all users at once day by day (every user's draw
of a day depends on every user before it), so no chunk of it can be made alone. The blocks
use generate()'s own code on their users, so the distributions are its distributions.

Event ids are unique and count up block after block (time order within a block, not across
blocks); user ids are 1..users as in generate().
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnctl.domain.generator import GeneratorConfig, generate_with

# Part of the data's definition: changing it changes the data. Large enough that the
# per-day Python loop of a block costs little next to its numpy work.
BLOCK_USERS = 5_000
PART = "part-{:05d}.parquet"
TABLES = ("users", "events")


@dataclass(frozen=True)
class Chunk:
    index: int
    first_block: int
    blocks: int  # whole blocks, the last one possibly short
    first_user: int  # 1-based
    users: int


def chunk_plan(users: int, chunk_users: int) -> list[Chunk]:
    """The chunks of `users` users: chunk_users rounded up to whole blocks, the last chunk
    holding what is left."""
    if users < 1 or chunk_users < 1:
        raise ValueError("users and chunk_users must be >= 1")
    per_chunk = -(-chunk_users // BLOCK_USERS)
    total_blocks = -(-users // BLOCK_USERS)
    chunks = []
    for index, first in enumerate(range(0, total_blocks, per_chunk)):
        blocks = min(per_chunk, total_blocks - first)
        first_user = first * BLOCK_USERS + 1
        last_user = min((first + blocks) * BLOCK_USERS, users)
        chunks.append(Chunk(index, first, blocks, first_user, last_user - first_user + 1))
    return chunks


def _block(config: GeneratorConfig, block: int, first_event_id: int,
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Block `block`'s users and events, ids offset to their place in the whole data set."""
    first_user = block * BLOCK_USERS
    size = min(BLOCK_USERS, config.users - first_user)
    seeds = np.random.SeedSequence([config.seed, block])
    users, events = generate_with(replace(config, users=size),
                                  np.random.Generator(np.random.PCG64(seeds)))
    users["user_id"] += first_user
    events["user_id"] += first_user
    events["event_id"] += first_event_id - 1
    return users, events


def iter_blocks(config: GeneratorConfig, chunk_users: int,
                ) -> Iterator[tuple[Chunk, pd.DataFrame, pd.DataFrame]]:
    """(chunk, users, events) of each block in user order, with the chunk it belongs to."""
    next_event_id = 1
    for chunk in chunk_plan(config.users, chunk_users):
        for block in range(chunk.first_block, chunk.first_block + chunk.blocks):
            users, events = _block(config, block, next_event_id)
            next_event_id += len(events)
            yield chunk, users, events


def iter_chunks(config: GeneratorConfig, chunk_users: int,
                ) -> Iterator[tuple[Chunk, pd.DataFrame, pd.DataFrame]]:
    """(chunk, users, events) in user order; only one chunk's frames live at a time."""
    parts: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    for chunk, users, events in iter_blocks(config, chunk_users):
        parts.append((users, events))
        if len(parts) == chunk.blocks:  # the chunk's last block
            merged = (pd.concat([u for u, _ in parts], ignore_index=True),
                      pd.concat([e for _, e in parts], ignore_index=True))
            parts = []
            yield chunk, *merged
            del merged


def write_chunked(config: GeneratorConfig, out_dir: Path, chunk_users: int,
                  ) -> dict[str, object]:
    """Write OUT/users.parquet/ and OUT/events.parquet/, one part file per chunk, a row group
    per block: memory holds one block, whatever the chunk size. Each directory appears
    complete or not at all (written aside, then renamed into place)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}.{secrets.token_hex(6)}"
    staging = {t: out_dir / f".{t}.parquet.{token}.tmp" for t in TABLES}
    counts = {"users": 0, "events": 0, "parts": 0}
    try:
        for folder in staging.values():
            folder.mkdir()
        writers: dict[str, _PartWriter] = {}
        current = -1
        for chunk, users, events in iter_blocks(config, chunk_users):
            if chunk.index != current:
                for writer in writers.values():
                    writer.close()
                writers = {t: _PartWriter(staging[t] / PART.format(chunk.index))
                           for t in TABLES}
                current = chunk.index
                counts["parts"] += 1
            for table, frame in (("users", users), ("events", events)):
                writers[table].write(frame)
                counts[table] += len(frame)
            del users, events
        for writer in writers.values():
            writer.close()
        targets = {t: out_dir / f"{t}.parquet" for t in TABLES}
        for table, target in targets.items():
            _replace_dir(staging[table], target)
    finally:
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
    return {**counts, "chunk_users": -(-chunk_users // BLOCK_USERS) * BLOCK_USERS,
            "files": {t: str(p) for t, p in targets.items()}}


class _PartWriter:
    """One part file, a row group per frame, every frame in the first one's Arrow schema."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _replace_dir(source: Path, target: Path) -> None:
    """Move `source` to `target`; an earlier `target` (a file or directory) is dropped only
    after the new one is in place under a side name."""
    if not target.exists():
        os.replace(source, target)
        return
    old = target.with_name(f".{target.name}.{secrets.token_hex(6)}.old")
    os.replace(target, old)
    os.replace(source, target)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
