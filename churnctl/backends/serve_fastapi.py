"""The `fastapi` serve backend: an online API (uvicorn) and batch scoring of the production model.

Light at import: FastAPI, uvicorn, pandas and sklearn are imported by the methods that use them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

# Re-exported: ServeOptions lives in serving so that serving never imports this backend.
from churnctl.serving.options import ServeOptions
from churnctl.stages import Backend, StrictOptions
from churnctl.workspace import Workspace

if TYPE_CHECKING:
    from fastapi import FastAPI

    from churnctl.serving.batch import BatchResult


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
