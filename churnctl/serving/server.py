"""Run the API under uvicorn: one process, or several workers that each build the app.

uvicorn starts workers by importing an app factory, so the workspace and options travel in an
environment variable rather than as objects.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from churnctl.environ import scoped_environ
from churnctl.serving.options import MULTIPROCESS_ENV, ServeOptions
from churnctl.workspace import Workspace

if TYPE_CHECKING:
    from fastapi import FastAPI

CONFIG_ENV = "CHURNCTL_SERVE_CONFIG"
FACTORY = "churnctl.serving.server:app_from_env"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def config_env(workspace: Workspace, options: ServeOptions) -> dict[str, str]:
    """The environment that makes `app_from_env` build the app for `workspace`."""
    config = {"workspace": str(workspace.root), "options": options.model_dump()}
    return {CONFIG_ENV: json.dumps(config)}


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory churnctl.serving.server:app_from_env`."""
    from churnctl.serving.app import create_app

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise RuntimeError(f"{CONFIG_ENV} is not set; start the API with `churnctl serve`")
    config = json.loads(raw)
    # One compute thread per server process: requests (and workers) are the parallelism, and
    # OpenMP threads spinning beside the event loop would add latency to every other request.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    return create_app(Workspace(Path(config["workspace"])), config.get("options") or {})


def run_server(workspace: Workspace, options: ServeOptions, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM: in-flight requests get
    `request_timeout_seconds` to finish, then the process exits)."""
    import uvicorn

    os.environ.update(config_env(workspace, options))
    with multiprocess_metrics(options.workers):
        uvicorn.run(
            FACTORY, factory=True, host=options.host, port=options.port,
            workers=options.workers, log_level=log_level,
            access_log=False,  # one log line per request would cost more than scoring it
            timeout_graceful_shutdown=options.request_timeout_seconds,  # type: ignore[arg-type]
        )


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[None]:
    """With several workers, Prometheus' multiprocess mode in a private directory (removed on
    exit): each worker writes its samples there and /metrics adds up all workers'."""
    if workers <= 1:
        yield
        return
    folder = tempfile.mkdtemp(prefix="churnctl-metrics-")
    # prometheus_client's, and ours (metrics.py): inherited by the workers uvicorn spawns
    try:
        with scoped_environ(dict.fromkeys((MULTIPROC_ENV, MULTIPROCESS_ENV), folder)):
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
