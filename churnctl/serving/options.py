"""Options of the `fastapi` serve backend, kept in serving so the app, the server and the
backend all import them from here (the backend imports serving, never the reverse)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from churnctl.stages import StrictOptions

# Set by `serve --workers N` (server.multiprocess_metrics): the metrics directory the workers
# share. Only this turns on multiprocess metrics, not a PROMETHEUS_MULTIPROC_DIR from elsewhere.
MULTIPROCESS_ENV = "CHURNCTL_METRICS_MULTIPROC_DIR"


class ServeOptions(StrictOptions):
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    max_batch: int = Field(1000, ge=1, description="Most customers in one /predict/batch (413).")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body (413).")
    reload_interval_seconds: float = Field(
        2.0, ge=0, description="Seconds between checks for a new production model (0: never).")
    request_timeout_seconds: float = Field(
        1.0, gt=0, le=300, description="After SIGTERM, in-flight requests get this long to "
        "finish before the process exits (keep terminationGracePeriodSeconds above it).")
    api_token_file: str | None = Field(
        None, description="File holding the bearer token (a mounted Kubernetes Secret); "
        "default: the CHURNCTL_API_TOKEN variable; neither: no authentication.")
    protect_metrics: bool = Field(False, description="/metrics needs the token too.")
    online_cache_users: int = Field(
        10_000, ge=0, description="v3 on Feast's online store: users whose decoded online "
        "row a worker keeps until the store changes (SQLite's data_version; Redis's "
        "invalidation messages); 0: read the store each time.")
    top_k: int = Field(100, ge=1, description="Highest-risk customers listed by batch scoring.")
    model_source: Literal["registry", "mlflow"] = Field(
        "registry", description="The local registry's production model, or the MLflow model "
        "version holding `mlflow_alias` (v2).")
    mlflow_tracking_uri: str | None = Field(
        None, description="Default: the profile's tracking URI (MLFLOW_TRACKING_URI wins).")
    mlflow_model_name: str = "churn"
    mlflow_alias: str = "champion"
    model_version: int | None = Field(
        None, ge=1, description="Serve this registry version instead of following production "
        "(a canary's pods pin the version under test; hot reload still checks it is there).")
