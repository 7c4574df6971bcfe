"""The `fastapi` serve backend: an online API (uvicorn) and batch scoring of the production model.

Light at import: FastAPI, uvicorn, pandas and sklearn are imported by the methods that use them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from churnctl.stages import Backend, StrictOptions
from churnctl.workspace import Workspace

if TYPE_CHECKING:
    from fastapi import FastAPI

    from churnctl.serving.batch import BatchResult


class ServeOptions(StrictOptions):
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    max_batch: int = Field(1000, ge=1, description="Most customers in one /predict/batch (413).")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body (413).")
    reload_interval_seconds: float = Field(
        2.0, ge=0, description="Seconds between checks for a new production model (0: never).")
    top_k: int = Field(100, ge=1, description="Highest-risk customers listed by batch scoring.")
    model_source: Literal["registry", "mlflow"] = Field(
        "registry", description="The local registry's production model, or the MLflow model "
        "version holding `mlflow_alias` (v2).")
    mlflow_tracking_uri: str | None = Field(
        None, description="Default: the profile's tracking URI (MLFLOW_TRACKING_URI wins).")
    mlflow_model_name: str = "churn"
    mlflow_alias: str = "champion"


class FastapiServe(Backend):
    name: ClassVar[str] = "fastapi"
    stage: ClassVar[str] = "serve"
    description: ClassVar[str] = (
        "FastAPI + uvicorn online API with Prometheus metrics and model hot reload; "
        "batch scoring to Parquet and CSV")
    Options: ClassVar[type[StrictOptions]] = ServeOptions
    extra: ClassVar[str | None] = "serve"
    modules: ClassVar[tuple[str, ...]] = ("fastapi", "uvicorn", "prometheus_client")

    def create_app(self, workspace: Workspace, options: ServeOptions) -> FastAPI:
        from churnctl.serving.app import create_app

        return create_app(workspace, options)

    def serve(self, workspace: Workspace, options: ServeOptions, log_level: str = "info") -> None:
        """Run the API until interrupted."""
        from churnctl.serving.server import run_server

        run_server(workspace, options, log_level=log_level)

    def score(self, workspace: Workspace, options: ServeOptions, as_of: date | None = None,
              out: Path | None = None, **kwargs: Any) -> BatchResult:
        """Score the latest snapshot of every user with the production model."""
        from churnctl.serving.batch import score_latest

        return score_latest(workspace, as_of=as_of, out_dir=out, top_k=options.top_k, **kwargs)
