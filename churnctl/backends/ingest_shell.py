"""Ingest the v1 way: a real shell script that calls the synthetic data generator."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from churnctl.errors import ChurnctlError
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions
from churnctl.workspace import Workspace

SCRIPT = Path(__file__).parent / "scripts" / "generate_data.sh"


class ShellIngestOptions(StrictOptions):
    users: int = Field(2000, gt=0, le=5_000_000)
    days: int = Field(120, ge=45, le=3650)
    seed: int = 42
    start: dt.date = dt.date(2025, 1, 1)
    paid_ratio: float = Field(0.35, ge=0, le=1)
    churn_rate: float = Field(0.35, ge=0, le=1)
    drift: float = Field(0.0, ge=0)


class ShellIngest(Backend):
    name = "shell"
    stage = "ingest"
    description = "runs scripts/generate_data.sh to make the built-in synthetic users + events"
    Options = ShellIngestOptions
    extra = "pandas"
    modules = ("pandas", "numpy", "pyarrow")
    binaries = ("bash",)
    # The script runs the generator in a subprocess: no import edge leads to it.
    code_modules: ClassVar[tuple[str, ...]] = ("churnctl.domain.generator",)

    def external_inputs(self, options: ShellIngestOptions, workspace: Workspace) -> list[Path]:
        return [SCRIPT]

    def run(self, ctx: StageContext) -> StageOutput:
        opts: ShellIngestOptions = ctx.options
        command = [
            "bash", str(SCRIPT), str(ctx.out_dir), str(opts.users), str(opts.days),
            str(opts.seed), "parquet",
            "--start", opts.start.isoformat(), "--paid-ratio", str(opts.paid_ratio),
            "--churn-rate", str(opts.churn_rate), "--drift", str(opts.drift),
        ]
        env = {**os.environ, "PYTHON": sys.executable}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ChurnctlError(f"{SCRIPT.name} failed (exit {done.returncode}): {tail}")
        return StageOutput(summary=_row_counts(ctx.out_dir),
                           tables={"users": "users.parquet", "events": "events.parquet"})


def _row_counts(folder: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {f"{p.stem}_rows": pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet")}
