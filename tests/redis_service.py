"""A real redis-server for the tests (Debian package redis-server; .ci/run installs it):
started on a free 127.0.0.1 port once per session, stopped by its PID; `start_redis` for a
test that stops its own server (Redis down)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(folder: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """A running redis-server and its `host:port` (skips where the binary is missing);
    the caller stops it by its PID (`process.terminate()` or `.kill()`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64)[:1] in (b"+", b"-"):  # -NOAUTH: up, with a password
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    return process, f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a running redis-server (skipped where the binary is missing)."""
    process, address = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)
