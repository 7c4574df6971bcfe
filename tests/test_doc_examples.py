"""The README's everyday commands and every documented /predict request work as written on the
built-in data (the issue: a documented request was a 404 on it)."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app

ROOT = Path(__file__).parent.parent
# Commands of the "Everyday use" block that other tests run (a server, a 20,000-user run).
ELSEWHERE = {
    "churnctl serve": "long-running; tests/test_serving_server.py starts it for real",
    "churnctl run --set ingest.users=20000": "the default run at 10x the size: bench/",
}


def _everyday_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Everyday use", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines()
            if line.startswith("churnctl ")]


@pytest.fixture(scope="module")
def default_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`churnctl run` with nothing set: the built-in data the examples are written for."""
    root = tmp_path_factory.mktemp("default")
    result = CliRunner().invoke(cli_app, ["run", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    return root


def test_the_readme_everyday_commands_run_as_written(default_workspace: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(default_workspace)
    commands = _everyday_commands()
    assert len(commands) >= 15 and set(ELSEWHERE) <= set(commands)
    for command in commands:
        if command in ELSEWHERE:
            continue
        result = CliRunner().invoke(cli_app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}: {result.output[-2000:]}"


def _documented_requests() -> list[dict]:
    """JSON bodies of every /predict example in the README, docs/ and `serve --help`."""
    help_text = CliRunner().invoke(cli_app, ["serve", "--help"]).stdout
    texts = [(ROOT / "README.md").read_text(), help_text,
             *(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))]
    bodies = []
    for text in texts:
        for line in text.splitlines():
            found = re.search(r"/predict\S*\s.*?(?:-d|--json|--data)\s+'(\{.*\})'", line)
            if found:
                bodies.append((line.strip(), json.loads(found.group(1))))
    return bodies


def test_every_documented_request_is_answered_on_the_built_in_data(default_workspace) -> None:
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app
    from churnctl.workspace import Workspace

    requests = _documented_requests()
    assert requests, "no documented /predict example found"
    with TestClient(create_app(Workspace(default_workspace))) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        for line, body in requests:
            path = "/predict/batch" if "/predict/batch" in line else "/predict"
            answer = client.post(path, json=body)
            assert answer.status_code == 200, f"{line}: {answer.text[:300]}"
