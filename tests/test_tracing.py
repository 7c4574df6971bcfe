"""OpenTelemetry tracing: off (and not imported) unless configured; one trace per run with a
span per stage; server spans for the API with W3C trace context, health and metrics excluded;
spans that reach a real OTLP collector (rotel) over HTTP and gRPC."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl import tracing
from churnctl.cli.main import app
from tests.conftest import SMALL

pytest.importorskip("opentelemetry.sdk", reason="install churnctl[otel]")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

OTEL_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL")


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    tracing.shutdown()
    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter=exporter)
    yield exporter
    tracing.shutdown()


def test_off_by_default_and_never_imported() -> None:
    code = (
        "import sys\n"
        "from churnctl.cli.main import app\n"
        "import churnctl.runner\n"
        "from churnctl import tracing\n"
        "assert not tracing.configure()\n"
        "with tracing.span('x', {'a': 1}) as s:\n"
        "    assert s is tracing.NOOP\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in OTEL_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_run_is_one_trace_with_a_span_per_stage(memory: InMemorySpanExporter,
                                                tmp_path: Path) -> None:
    args = ["run", "--workspace", str(tmp_path), "--json", *SMALL]
    first = CliRunner().invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    spans = memory.get_finished_spans()
    (run,) = [s for s in spans if s.name == "churnctl run"]
    stages = [s for s in spans if s.name.startswith("stage ")]
    assert [s.attributes["churnctl.stage"] for s in stages] == [
        row["name"] for row in record["stages"]]
    for span, row in zip(stages, record["stages"], strict=True):
        assert span.parent is not None and span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
        assert span.attributes["churnctl.backend"] == row["backend"]
        assert span.attributes["churnctl.cache"] == "miss"
        assert span.attributes["churnctl.seconds"] == pytest.approx(row["seconds"])
    assert run.parent is None
    assert run.attributes["churnctl.run_id"] == record["run_id"]
    assert run.attributes["churnctl.status"] == "succeeded"
    assert run.attributes["churnctl.profile"] == "v1"

    memory.clear()
    again = CliRunner().invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0
    cached = [s for s in memory.get_finished_spans() if s.name.startswith("stage ")]
    assert cached and {s.attributes["churnctl.cache"] for s in cached} == {"hit"}


def test_api_server_spans_propagate_trace_context(memory: InMemorySpanExporter,
                                                  tmp_path: Path) -> None:
    import pandas as pd
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app
    from tests.serving_demo import make_demo_workspace

    workspace = make_demo_workspace(tmp_path, users=300)
    api = create_app(workspace, {"max_batch": 20})
    api.state.holder.refresh()
    frame = pd.read_parquet(next(workspace.artifacts.glob("features/*/latest.parquet")))
    user = frame["user_id"].iloc[0]
    client = TestClient(api)
    for path in ("/live", "/ready", "/metrics"):
        assert client.get(path).status_code == 200
    assert memory.get_finished_spans() == ()  # health and metrics make no spans
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    answer = client.post("/predict", json={"user_id": user},
                         headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert answer.status_code == 200, answer.text
    spans = memory.get_finished_spans()
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    assert server.name == "POST /predict"  # FastAPI's native server span, one per request
    assert server.attributes["http.route"] == "/predict"
    assert server.attributes["http.response.status_code"] == 200
    assert format(server.context.trace_id, "032x") == trace_id
    assert format(server.parent.span_id, "016x") == parent_id
    (score,) = [s for s in spans if s.name == "churnctl score"]
    assert score.context.trace_id == server.context.trace_id
    assert score.attributes["churnctl.model_version"] == answer.json()["model_version"]
    assert score.attributes["churnctl.rows"] == 1
    assert score.parent.span_id == server.context.span_id
    assert len(spans) == 2  # no ASGI send/receive spans, no FastAPI operation spans
    assert {k: server.attributes[k] for k in ("http.request.method", "url.path", "url.scheme",
                                              "server.address")} == {
        "http.request.method": "POST", "url.path": "/predict", "url.scheme": "http",
        "server.address": "testserver"}
    assert "error.type" not in server.attributes

    # A caller that did not sample its trace: the server and score spans are dropped with it.
    memory.clear()
    unsampled = client.post("/predict", json={"user_id": user},
                            headers={"traceparent": f"00-{trace_id}-{parent_id}-00"})
    assert unsampled.status_code == 200
    assert memory.get_finished_spans() == ()
    # An error answer is recorded as one (route, status, error.type).
    failed = client.post("/predict", content=b"{not json", headers={
        "content-type": "application/json"})
    assert failed.status_code == 400
    (bad,) = [s for s in memory.get_finished_spans() if s.kind.name == "SERVER"]
    assert bad.attributes["http.response.status_code"] == 400


# -- a real OTLP collector ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rotel() -> str | None:
    try:
        import rotel
    except ImportError:
        return None
    binary = Path(rotel.__file__).parent / "rotel-agent"
    return str(binary) if binary.is_file() else None


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    binary = _rotel()
    if binary is None:
        pytest.skip("pip install rotel (in the dev extra)")
    grpc, http = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("rotel") / "spans.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
             "--otlp-http-endpoint", f"127.0.0.1:{http}", "--exporter", "blackhole",
             "--debug-log", "traces", "--debug-log-verbosity", "detailed",
             "--pid-file", str(log.with_suffix(".pid"))],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"rotel did not start: {log.read_text()[-500:]}")
                time.sleep(0.05)
        yield {"grpc": grpc, "http": http, "log": log}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _collected(log: Path, names: set[str], timeout: float = 10.0) -> list[dict[str, str]]:
    """Spans in rotel's detailed debug log, once every name in `names` has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        spans = []
        for block in log.read_text().split("Span #")[1:]:
            fields = dict(re.findall(r"^\s*(Trace ID|Parent ID|ID|Name)\s*: ?(.*)$", block,
                                     re.MULTILINE))
            fields["attributes"] = block.split("Attributes:", 1)[-1]
            spans.append(fields)
        if names <= {s.get("Name", "").strip() for s in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


@pytest.mark.slow
def test_a_run_reaches_a_real_collector_over_http(collector: dict[str, Any],
                                                  tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector['http']}",
           "OTEL_SERVICE_NAME": "churnctl-test-http"}
    env.pop("OTEL_EXPORTER_OTLP_PROTOCOL", None)
    churnctl = Path(sys.executable).parent / "churnctl"
    done = subprocess.run([str(churnctl), "run", "--workspace", str(tmp_path), "--json", *SMALL],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    names = {"churnctl run", *(f"stage {row['name']}" for row in record["stages"])}
    spans = _collected(collector["log"], names)
    by_name = {s["Name"].strip(): s for s in spans if s.get("Name")}
    assert names <= set(by_name)
    run = by_name["churnctl run"]
    assert record["run_id"] in run["attributes"]
    for row in record["stages"]:
        stage = by_name[f"stage {row['name']}"]
        assert stage["Parent ID"].strip() == run["ID"].strip()
        assert stage["Trace ID"] == run["Trace ID"]
        assert f"churnctl.backend: Str({row['backend']})" in stage["attributes"]
        assert "churnctl.cache: Str(miss)" in stage["attributes"]


def test_spans_reach_a_real_collector_over_grpc(collector: dict[str, Any]) -> None:
    tracing.shutdown()
    try:
        assert tracing.configure(f"http://127.0.0.1:{collector['grpc']}", protocol="grpc")
        with tracing.span("grpc parent", {"churnctl.stage": "outer"}), \
                tracing.span("grpc child", {"churnctl.stage": "inner"}):
            pass
    finally:
        tracing.shutdown()  # flushes the batch
    spans = {s["Name"].strip(): s for s in _collected(collector["log"],
                                                      {"grpc parent", "grpc child"})}
    assert spans["grpc child"]["Parent ID"].strip() == spans["grpc parent"]["ID"].strip()


def test_our_span_encoding_reaches_a_real_collector(collector: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from churnctl import tracing_otlp

    def library(_: Any) -> Any:
        raise AssertionError("the library's encoder ran")

    # No verification batches, and the library's encoder refused: what arrives is ours.
    monkeypatch.setattr(tracing_otlp, "VERIFY_BATCHES", 0)
    monkeypatch.setattr(tracing_otlp, "encode_spans", library)
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    tracing.shutdown()
    try:
        assert tracing.configure(f"http://127.0.0.1:{collector['http']}")
        with tracing.span("ours parent", {"churnctl.rows": 3, "churnctl.scorer": "linear"}), \
                tracing.span("ours child", {"churnctl.share": 0.25, "churnctl.ok": True}):
            pass
    finally:
        tracing.shutdown()  # flushes the batch
    spans = {s["Name"].strip(): s for s in _collected(collector["log"],
                                                      {"ours parent", "ours child"})}
    assert spans["ours child"]["Parent ID"].strip() == spans["ours parent"]["ID"].strip()
    assert spans["ours child"]["Trace ID"] == spans["ours parent"]["Trace ID"]
    for expected in ("churnctl.rows: Int(3)", "churnctl.scorer: Str(linear)"):
        assert expected in spans["ours parent"]["attributes"]
    for expected in ("churnctl.share: Double(0.25)", "churnctl.ok: Bool(true)"):
        assert expected in spans["ours child"]["attributes"]


def test_export_batches_are_small_and_frequent_unless_the_standard_variables_say(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert tracing._batch_settings() == {"schedule_delay_millis": 500,
                                         "max_export_batch_size": 256}
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "5000")
    assert tracing._batch_settings() == {"max_export_batch_size": 256}  # the SDK reads it
