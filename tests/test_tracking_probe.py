"""The MLflow server probe with credentials in the tracking URI (MLflow's basic auth)."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from churnctl.tracking.mlflow_tracker import TrackingUnavailable, probe, redact


class _Health(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        _Health.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Health.seen.clear()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_credentials_in_the_uri_are_sent_as_basic_auth_not_taken_for_a_host(server) -> None:
    probe(f"http://alice:p%40ss@127.0.0.1:{server}/", timeout=3)
    path, header = _Health.seen[-1]
    assert path == "/health"
    assert header == "Basic " + base64.b64encode(b"alice:p@ss").decode()
    assert redact(f"http://alice:p%40ss@127.0.0.1:{server}/") == f"http://127.0.0.1:{server}/"


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    with pytest.raises(TrackingUnavailable) as info:
        probe("http://alice:secret@127.0.0.1:9/", timeout=1)
    assert "secret" not in str(info.value) and "unreachable" in str(info.value)
