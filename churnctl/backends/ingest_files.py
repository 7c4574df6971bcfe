"""Ingest users + events tables the user already has, from CSV or Parquet files, or from
directories of Parquet part files (`churnctl data generate --chunk-users` writes them):
conformed part by part into a part directory, so memory follows one part, not the table."""

from __future__ import annotations

from pathlib import Path

from churnctl.errors import DataError
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions
from churnctl.workspace import Workspace


class FilesIngestOptions(StrictOptions):
    users: Path
    events: Path


def parts_of(path: Path) -> list[Path]:
    """The Parquet part files of a directory table, in name order (one clear line if none)."""
    parts = sorted(p for p in path.glob("*.parquet") if p.is_file())
    if not parts:
        raise DataError(f"{path}: a directory without Parquet part files (*.parquet); name a "
                        "CSV or Parquet file, or a directory of Parquet parts")
    return parts


class FilesIngest(Backend):
    name = "files"
    stage = "ingest"
    description = "reads users + events from CSV or Parquet files (or Parquet part directories)"
    Options = FilesIngestOptions
    extra = "pandas"
    modules = ("pandas", "pyarrow")

    def external_inputs(self, options: FilesIngestOptions, workspace: Workspace) -> list[Path]:
        inputs = []
        for path in (workspace.root / options.users, workspace.root / options.events):
            inputs += parts_of(path) if path.is_dir() else [path]  # the cache key hashes each
        return inputs

    def run(self, ctx: StageContext) -> StageOutput:
        from churnctl.domain.schema import TABLES
        from churnctl.domain.tables import conform, read_raw

        opts: FilesIngestOptions = ctx.options
        sources = {
            "users": ctx.workspace.root / opts.users,
            "events": ctx.workspace.root / opts.events,
        }
        summary: dict[str, int] = {}
        for table, path in sources.items():
            target = ctx.out_dir / f"{table}.parquet"
            if path.is_dir():
                target.mkdir()
                pieces = [(part, target / part.name) for part in parts_of(path)]
            else:
                pieces = [(path, target)]
            rows, seen = 0, set()
            for source, written in pieces:
                frame, notes = conform(read_raw(source), TABLES[table], source)
                for note in notes:
                    if note.split(": ", 1)[1] not in seen:  # once per table, not per part
                        seen.add(note.split(": ", 1)[1])
                        ctx.log(note)
                frame.to_parquet(written, index=False)
                rows += len(frame)
                del frame
            summary[f"{table}_rows"] = rows
        return StageOutput(summary=summary,
                           tables={table: f"{table}.parquet" for table in sources},
                           meta={"sources": {table: str(path) for table, path in sources.items()}})
