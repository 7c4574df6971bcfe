"""`churnctl data generate`: write the built-in synthetic users + events to files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from churnctl.cli.common import JsonOption, console, print_json

app = typer.Typer(help="Make and inspect data sets.", no_args_is_help=True)


@app.command("generate")
def generate(
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of events.")] = 120,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: same seed, same data.")] = 42,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2025-01-01",
    drift: Annotated[float, typer.Option(min=0.0, help="Plant covariate drift (0 = none).")] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("data"),
    json_out: JsonOption = False,
) -> None:
    """Generate synthetic churn data (users + events), deterministic by seed.

    Examples:

      churnctl data generate --users 20000 --out data/

      churnctl data generate --format csv --drift 0.5 --seed 7
    """
    from churnctl.errors import UserError

    if fmt not in ("parquet", "csv"):
        raise UserError(f"--format {fmt!r}: use parquet or csv")
    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        raise UserError(f"--start {start!r}: expected a date like 2025-01-01") from None
    from churnctl.domain.generator import GeneratorConfig, generate, write_dataset

    config = GeneratorConfig(users=users, days=days, seed=seed, start=first_day, drift=drift)
    user_table, events = generate(config)
    paths = write_dataset(user_table, events, out, fmt)  # type: ignore[arg-type]
    result = {"users": len(user_table), "events": len(events),
              "files": {k: str(v) for k, v in paths.items()}}
    if json_out:
        print_json(result)
    else:
        console().print(f"wrote {len(user_table):,} users and {len(events):,} events to {out}")
