"""Ingest users + events tables the user already has, from CSV or Parquet files."""

from __future__ import annotations

from pathlib import Path

from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions
from churnctl.workspace import Workspace


class FilesIngestOptions(StrictOptions):
    users: Path
    events: Path


class FilesIngest(Backend):
    name = "files"
    stage = "ingest"
    description = "reads users + events from CSV or Parquet files given by path"
    Options = FilesIngestOptions
    extra = "pandas"
    modules = ("pandas", "pyarrow")

    def external_inputs(self, options: FilesIngestOptions, workspace: Workspace) -> list[Path]:
        return [workspace.root / options.users, workspace.root / options.events]

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
            frame, notes = conform(read_raw(path), TABLES[table], path)
            for note in notes:
                ctx.log(note)
            frame.to_parquet(ctx.out_dir / f"{table}.parquet", index=False)
            summary[f"{table}_rows"] = len(frame)
        return StageOutput(summary=summary,
                           tables={table: f"{table}.parquet" for table in sources},
                           meta={"sources": {table: str(path) for table, path in sources.items()}})
