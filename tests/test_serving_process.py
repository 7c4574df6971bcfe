"""`run_server` (what `churnctl serve` runs) in a real child process: shutdown and workers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from churnctl.workspace import Workspace
from tests.serving_demo import ServerProcess, free_port, make_demo_workspace

RUN = ("import json, sys; from churnctl.serving.options import ServeOptions; "
       "from churnctl.serving.server import run_server; from churnctl.workspace import Workspace; "
       "run_server(Workspace(sys.argv[1]), ServeOptions.model_validate(json.loads(sys.argv[2])), "
       "'warning')")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_demo_workspace(tmp_path_factory.mktemp("process"), users=300)


@contextmanager
def served(workspace: Workspace, **options: Any) -> Iterator[ServerProcess]:
    port = free_port()
    opts = {"host": "127.0.0.1", "port": port, **options}
    log = workspace.state / f"run-server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", RUN, str(workspace.root), json.dumps(opts)],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()})
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait("/ready")
        yield server
    finally:
        server.stop()


def _start_request(port: int, body: bytes, sent: int) -> socket.socket:
    """A POST /predict whose body is only partly sent: in flight until the rest arrives."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:sent])
    return sock


def test_sigterm_finishes_in_flight_requests_and_exits_within_the_timeout(
        workspace: Workspace) -> None:
    user = json.dumps({"user_id": _a_user(workspace)}).encode()
    with served(workspace, request_timeout_seconds=0.5, reload_interval_seconds=0.2) as server:
        port = int(server.url.rsplit(":", 1)[1])
        finishing = _start_request(port, user, 5)
        stalled = _start_request(port, user, 5)  # a client that never sends the rest
        time.sleep(0.3)
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        finishing.sendall(user[5:])
        answer = _read_all(finishing)
        server.process.wait(timeout=15)
        took = time.monotonic() - began
        stalled.close()
        finishing.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"churn_probability"' in answer
    assert took < 1.5, f"exit took {took:.2f}s"


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):  # the server closes the connection after answering
        chunks.append(chunk)
    return b"".join(chunks)


def _a_user(workspace: Workspace) -> Any:
    import pandas as pd

    frame = pd.read_parquet(next(workspace.artifacts.glob("features/*/latest.parquet")))
    return frame["user_id"].iloc[0]


def _live_count(text: str) -> float:
    found = re.search(r'churn_http_requests_total\{handler="/live",method="GET",status="200"\} '
                      r"(\S+)", text)
    return float(found.group(1)) if found else 0.0


def test_two_workers_metrics_add_up_and_the_directory_is_removed(workspace: Workspace) -> None:
    with served(workspace, workers=2) as server:
        def hit(_: int) -> int:  # a new connection each time, so both workers answer some
            return httpx.get(server.url + "/live", timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(hit, range(120))) == {200}
        for _ in range(6):  # whichever worker answers the scrape counts every worker's requests
            scrape = httpx.get(server.url + "/metrics", timeout=10).text
            assert _live_count(scrape) == 120, scrape[:2000]
            assert "churn_model_version 1.0" in scrape
        folders = _multiproc_dirs(server.process.pid)
        assert len(folders) == 1
        pids = {re.sub(r"\D", "", p.stem.rsplit("_", 1)[-1]) for p in folders[0].glob("*.db")}
        assert len(pids) == 2, pids  # both workers wrote samples
    assert not folders[0].exists()


def _multiproc_dirs(pid: int) -> list[Path]:
    """The metrics directory in the environment the server's workers started with."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for child in children:
        for item in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                found.add(Path(item.split(b"=", 1)[1].decode()))
    return sorted(found)
