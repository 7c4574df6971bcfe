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
    chunk_users: Annotated[int | None, typer.Option(
        min=1, help="Write users.parquet/ and events.parquet/ as part directories, this many "
        "users (rounded up to whole blocks of 5,000) per part, written a block at a time, so "
        "memory holds one block. "
        "Its own random stream per block: not the data of the same seed without it.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Generate synthetic churn data (users + events), deterministic by seed.

    Examples:

      churnctl data generate --users 20000 --out data/

      churnctl data generate --format csv --drift 0.5 --seed 7

      churnctl data generate --users 10000 --days 100 --chunk-users 5000 --out big/
    """
    from churnctl.errors import UserError

    if fmt not in ("parquet", "csv"):
        raise UserError(f"--format {fmt!r}: use parquet or csv")
    if chunk_users is not None and fmt != "parquet":
        raise UserError("--chunk-users writes Parquet part directories; drop --format csv")
    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        raise UserError(f"--start {start!r}: expected a date like 2025-01-01") from None
    from churnctl.domain.generator import GeneratorConfig, generate, write_dataset

    config = GeneratorConfig(users=users, days=days, seed=seed, start=first_day, drift=drift)
    if chunk_users is not None:
        _generate_chunked(config, out, chunk_users, json_out)
        return
    user_table, events = generate(config)
    paths = write_dataset(user_table, events, out, fmt)  # type: ignore[arg-type]
    result = {"users": len(user_table), "events": len(events),
              "files": {k: str(v) for k, v in paths.items()}}
    if json_out:
        print_json(result)
    else:
        console().print(f"wrote {len(user_table):,} users and {len(events):,} events to {out}")


def _generate_chunked(config: object, out: Path, chunk_users: int, json_out: bool) -> None:
    from churnctl.domain.generator_chunks import write_chunked

    result = write_chunked(config, out, chunk_users)  # type: ignore[arg-type]
    if json_out:
        print_json(result)
    else:
        console().print(f"wrote {result['users']:,} users and {result['events']:,} events to "
                        f"{out} in {result['parts']} part(s) of {result['chunk_users']:,} users")


@app.command("table")
def table(
    out: Annotated[Path, typer.Argument(help="File to write: .csv or .parquet.")] = Path(
        "customers.csv"),
    like: Annotated[str, typer.Option(
        help="Shape of a public churn export: telecom, bank or numeric-telecom.")] = "telecom",
    rows: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 7043,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: same seed, same table.")] = 0,
    json_out: JsonOption = False,
) -> None:
    """Write a sample customer table (one row per customer, a churn column) to try `--data` on.

    Examples:

      churnctl data table customers.csv

      churnctl data table bank.parquet --like bank --rows 10000
    """
    from churnctl.errors import UserError

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UserError(f"{out}: name a .csv or .parquet file")
    from churnctl.domain.sample_tables import SAMPLE_TABLES

    if like not in SAMPLE_TABLES:
        raise UserError(f"--like {like!r}: use one of {', '.join(SAMPLE_TABLES)}")
    make, target, id_column = SAMPLE_TABLES[like]
    frame = make(rows=rows, seed=seed)
    from churnctl.atomic import atomic_path

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    command = f"churnctl run --data {out} --target {target}"
    result = {"file": str(out), "rows": len(frame), "columns": len(frame.columns),
              "target": target, "id": id_column, "run": command}
    if json_out:
        print_json(result)
    else:
        console().print(f"wrote {len(frame):,} customers x {len(frame.columns)} columns to {out}"
                        f" (target {target}); try: {command}")
