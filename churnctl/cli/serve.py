"""`churnctl serve` (the online API) and `churnctl predict` (batch scoring).

Both use the profile's serve backend; FastAPI, uvicorn, pandas and sklearn are imported only
when a command runs.
"""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    print_json,
    stage_backend,
    workspace_at,
)
from churnctl.errors import BackendUnavailable, UserError
from churnctl.workspace import Workspace

HostOption = Annotated[str | None, typer.Option(
    "--host", help="Interface to listen on (default: the profile's, else 127.0.0.1).",
    show_default=False)]
PortOption = Annotated[int | None, typer.Option(
    "--port", min=0, max=65535, help="TCP port (default: the profile's, else 8000).",
    show_default=False)]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", min=1, max=64, help="uvicorn worker processes (default: 1).",
    show_default=False)]
ModelVersionOption = Annotated[int | None, typer.Option(
    "--model-version", min=1, help="Serve this registry version, not production (a canary).",
    show_default=False)]
AsOfOption = Annotated[datetime | None, typer.Option(
    "--as-of", formats=["%Y-%m-%d"], show_default=False,
    help="Score each user's newest snapshot on or before DATE (default: the newest).")]
OutOption = Annotated[Path | None, typer.Option(
    "--out", show_default=False,
    help="Directory for predictions.parquet, predictions.csv, top_k.csv and summary.json "
         "(default: reports/predictions), or a .parquet file name the others are named after.")]
DataOption = Annotated[Path | None, typer.Option(
    "--data", dir_okay=False, show_default=False,
    help="Score another export of your customer table (CSV, Parquet or Excel) with a model "
         "trained by `run --data`; --out is then a .csv or .parquet file.")]
TopKOption = Annotated[int | None, typer.Option(
    "--top-k", min=1, show_default=False,
    help="How many highest-risk users top_k.csv lists (default: the profile's, else 100).")]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("predict")(predict_command)


def _serve_backend(profile: str | None, workspace: Workspace, given: dict[str, Any]
                   ) -> tuple[Any, Any]:
    """The profile's serve backend and its options, CLI flags winning over the profile."""
    from churnctl.settings import resolve_profile_name

    flags = {key: value for key, value in given.items() if value is not None}
    loaded, backend, options = stage_backend(resolve_profile_name(profile, workspace), "serve",
                                             flags, ("serve", "score"))
    from churnctl import tracing

    # before create_app instruments it
    tracing.configure_from(getattr(loaded, "tracing", None), export_in_child=True)
    if getattr(options, "model_source", "registry") == "mlflow":
        options.mlflow_tracking_uri = _mlflow_uri(options.mlflow_tracking_uri, loaded, workspace)
    return backend, options


def _mlflow_uri(given: str | None, profile: Any, workspace: Workspace) -> str:
    """The serve option, else the profile's MLflow tracking URI; MLFLOW_TRACKING_URI wins."""
    from churnctl.tracking.mlflow_tracker import resolve_tracking_uri

    tracking = profile.tracking
    uri = given or (tracking.options.get("tracking_uri") if tracking and
                    tracking.backend == "mlflow" else None)
    if not uri:
        raise UserError("serve option model_source=mlflow needs mlflow_tracking_uri or a profile "
                        "with `tracking: {backend: mlflow}`")
    return resolve_tracking_uri(uri, workspace)


def _check_port(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                            "pick another port with --port") from None


def serve_command(
    profile: ProfileOption = None,
    host: HostOption = None,
    port: PortOption = None,
    workers: WorkersOption = None,
    model_version: ModelVersionOption = None,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Serve churn predictions over HTTP with the registry's production model.

    POST /predict and /predict/batch score customers by feature values or user_id.
    GET /live, /ready, /model and /metrics (Prometheus); OpenAPI at /openapi.json.
    A newly promoted model is picked up without a restart.

    Examples:

      churnctl serve

      churnctl serve --host 0.0.0.0 --port 8080 --workers 2

      curl -s localhost:8000/predict --json '{"user_id": 15}'
    """
    from churnctl.registry import require_available

    ws = workspace_at(workspace)
    backend, options = _serve_backend(profile, ws, {"host": host, "port": port,
                                                    "workers": workers,
                                                    "model_version": model_version})
    require_available(type(backend))
    _check_port(options.host, options.port)
    from churnctl.serving.sources import model_registry_for

    registry = model_registry_for(ws, options)
    try:
        production = registry.production()
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the model registry: {exc}") from None
    err = err_console()
    if production is None:
        err.print("[yellow]no production model yet:[/] /ready answers 503 until `churnctl run` "
                  "promotes one; the server picks it up without a restart")
    else:
        err.print(f"model v{production.version} ({production.algorithm}) from {registry.root}")
    missing = getattr(backend, "missing_variants", None)  # fastapi-ab: one model per variant
    for name in [v for v in missing(ws, options) if v != "champion"] if missing else []:
        err.print(f"[yellow]variant {name}: no model holds alias {name!r} yet:[/] /ready "
                  f"answers 503 until `churnctl ab alias {name} VERSION`; the server picks "
                  "it up without a restart")
    err.print(f"serving on http://{options.host}:{options.port} (workers: {options.workers}); "
              "docs at /docs, metrics at /metrics; Ctrl-C stops")
    backend.serve(ws, options)


def predict_command(
    profile: ProfileOption = None,
    as_of: AsOfOption = None,
    out: OutOption = None,
    top_k: TopKOption = None,
    data: DataOption = None,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Score the latest feature snapshot of every user with the production model.

    With --data, score every row of a customer-table export instead (this month's customers,
    with or without the target column): id (or row number) and churn probability per row.

    Writes predictions.parquet and predictions.csv (user_id, as_of,
    churn_probability, churn_predicted, risk_rank, model_version),
    top_k.csv (highest risks first) and summary.json, each atomically.

    Examples:

      churnctl predict

      churnctl predict --as-of 2025-04-30 --out exports/april --top-k 500

      churnctl predict --json | jq .rows_per_second

      churnctl predict --data customers-2025-06.csv --out scored.csv
    """
    import importlib.util

    missing = [m for m in ("pandas", "sklearn", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailable(f"batch scoring needs {', '.join(missing)}; install with: "
                                 "pip install 'churnctl[sklearn]'")
    ws = workspace_at(workspace)
    if data is not None:
        _score_table(ws, data, out, json_out)
        return
    backend, options = _serve_backend(profile, ws, {"top_k": top_k})
    result = backend.score(ws, options, as_of=as_of.date() if as_of else None,
                           out=out.resolve() if out else None)
    if json_out:
        print_json(result.to_dict())
        return
    from rich.table import Table

    output = console()
    output.print(f"scored {result.rows:,} users with model v{result.model_version} "
                 f"(scorer: {result.scorer}; snapshot: {result.as_of}; "
                 f"{result.rows_per_second:,.0f} rows/s)")
    if result.skipped_after_as_of:
        output.print(f"skipped {result.skipped_after_as_of:,} snapshots after {as_of:%Y-%m-%d}")
    table = Table(title=f"highest churn risk (top {min(len(result.top), top_k or 10)})")
    for column in ("rank", "user_id", "churn_probability"):
        table.add_column(column, justify="right" if column != "user_id" else "left")
    for row in result.top:
        table.add_row(str(row["risk_rank"]), str(row["user_id"]),
                      f"{row['churn_probability']:.3f}")
    output.print(table)
    for name, path in result.files.items():
        output.print(f"{name}: {path}")


def _score_table(ws: Any, data: Path, out: Path | None, json_out: bool) -> None:
    from churnctl.domain.table_scoring import score_table
    from churnctl.errors import UserError

    if out is None or out.suffix.lower() not in (".csv", ".parquet"):
        raise UserError("predict --data: give --out FILE.csv or FILE.parquet for the scores")
    result = score_table(ws, data.resolve(), out.resolve())
    if json_out:
        print_json(result)
        return
    output = console()
    for notice in result.get("notices", []):
        output.print(f"[dim]{notice}[/]")
    output.print(f"scored {result['rows']:,} rows with model v{result['model_version']}: "
                 f"{result['flagged']:,} above the threshold {result['threshold']:.3f}; "
                 f"wrote {result['out']}")
