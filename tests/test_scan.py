"""`churnctl scan` against the real Trivy, bandit, semgrep and pip-audit.

A temp project with planted problems (a hard-coded secret, yaml.load, shell=True, disabled TLS
verification, SQL from strings, a privileged root container) must be reported by each tool;
the merged SARIF must validate against the SARIF 2.1.0 schema (tests/data, from
oasis-tcs/sarif-spec); a check that cannot run must say "not checked", never pass.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.scan.model import find_tool

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
REPO = Path(__file__).resolve().parent.parent

needs_tools = pytest.mark.skipif(
    find_tool("trivy") is None or find_tool("bandit") is None,
    reason="install churnctl[scan] (make test does)",
)

PLANTED_PY = '''\
import subprocess

import requests
import yaml

API_TOKEN = "sk_live_4f9a8b7c6d5e4f3a2b1c"


def run(cmd):
    return subprocess.run(cmd, shell=True)


def load(text):
    return yaml.load(text)


def fetch(url):
    return requests.get(url, verify=False)


def find(cur, name):
    cur.execute("SELECT * FROM users WHERE name = '" + name + "'")
'''

PLANTED_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: root-pod
spec:
  containers:
    - name: app
      image: busybox:1.36
      securityContext:
        privileged: true
        runAsUser: 0
"""


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["scan", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("planted")
    (root / "app.py").write_text(PLANTED_PY)
    (root / "k8s").mkdir()
    (root / "k8s" / "pod.yaml").write_text(PLANTED_POD)
    out = root.parent / f"{root.name}-out"
    result = _invoke(str(root), "--out", str(out), "--format", "json")
    return {"root": root, "out": out, "result": result, "data": json.loads(result.stdout)}


def _rules(data: dict[str, Any], tool: str, path: str) -> set[str]:
    return {f["rule"] for f in data["findings"] if f["tool"] == tool and f["path"] == path}


@needs_tools
def test_each_tool_reports_the_planted_problems(planted: dict[str, Any]) -> None:
    data = planted["data"]
    assert planted["result"].exit_code == 1, planted["result"].output
    assert data["verdict"] == "fail"
    trivy_app = {f["category"] for f in data["findings"]
                 if f["tool"] == "trivy" and f["path"] == "app.py"}
    assert "secret" in trivy_app
    assert {"KSV-0017", "KSV-0012"} <= _rules(data, "trivy", "k8s/pod.yaml")  # privileged, root
    assert {"B602", "B506", "B501", "B105", "B608"} <= _rules(data, "bandit", "app.py")
    semgrep = [Path(sys.prefix) / "tools" / "semgrep" / "bin" / "semgrep"]
    if find_tool("semgrep", "CHURNCTL_SEMGREP", semgrep):
        assert {"churnctl.shell-injection", "churnctl.unsafe-deserialization",
                "churnctl.hard-coded-secret", "churnctl.tls-verification-disabled",
                "churnctl.sql-from-strings"} <= _rules(data, "semgrep", "app.py")
    else:
        pytest.fail("semgrep is not installed: make test installs it in .venv/tools/semgrep")
    line = {f["line"] for f in data["findings"] if f["rule"] == "B602"}
    assert line == {10}


@needs_tools
def test_vulnerabilities_not_checked_without_a_database(planted: dict[str, Any]) -> None:
    data = planted["data"]
    assert data["vulnerabilities"] == "not checked (no database)"
    checks = {c["name"]: c for t in data["tools"] for c in t["checks"]}
    assert checks["vulnerabilities"]["status"] == "not checked"
    audit = checks["dependencies"]
    # Without its sources pip-audit --strict fails: "not checked", never a silent pass.
    assert audit["status"] == "not checked" or audit["detail"].endswith("packages")
    assert any(n.startswith("vulnerabilities: not checked") for n in data["not_checked"])


@needs_tools
def test_sarif_validates_with_one_run_per_tool(planted: dict[str, Any]) -> None:
    sarif = json.loads((planted["out"] / "scan.sarif").read_text())
    jsonschema.validate(sarif, json.loads(SCHEMA.read_text()))
    assert [run["tool"]["driver"]["name"] for run in sarif["runs"]] == [
        "trivy", "bandit", "semgrep", "pip-audit"]
    categories = {run["automationDetails"]["id"] for run in sarif["runs"]}
    assert len(categories) == 4
    bandit = sarif["runs"][1]
    rule_ids = [r["id"] for r in bandit["tool"]["driver"]["rules"]]
    for result in bandit["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
    html = (planted["out"] / "scan.html").read_text()
    assert "B602" in html and "not checked" in html
    sbom = json.loads((planted["out"] / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and len(sbom["components"]) > 20


@needs_tools
def test_table_groups_and_says_not_checked(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("print('hello')\n")
    result = _invoke(str(tmp_path), "--tool", "trivy", "--tool", "bandit")
    assert result.exit_code == 0, result.output
    assert "vulnerabilities: not checked (no database)" in result.stdout
    assert "incomplete" in result.stdout  # no finding, but not everything was checked
    strict = _invoke(str(tmp_path), "--tool", "trivy", "--strict")
    assert strict.exit_code == 1


@needs_tools
def test_fail_on_threshold_and_reasoned_ignores(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import yaml\n\n\ndef f(t):\n    return yaml.load(t)\n")
    medium = _invoke(str(tmp_path), "--tool", "bandit", "--fail-on", "MEDIUM", "--format", "json")
    assert medium.exit_code == 1
    assert _invoke(str(tmp_path), "--tool", "bandit", "--fail-on", "HIGH").exit_code == 0
    (tmp_path / "scan-ignore.yaml").write_text(textwrap.dedent("""\
        ignores:
          - {rule: B506, path: "*.py", why: "fixture text only", expires: 2999-01-01}
        """))
    ignored = _invoke(str(tmp_path), "--tool", "bandit", "--fail-on", "LOW", "--format", "json")
    assert ignored.exit_code == 0
    data = json.loads(ignored.stdout)
    assert data["ignored"] == 1 and data["findings"][0]["ignored"] == "fixture text only"
    (tmp_path / "scan-ignore.yaml").write_text(textwrap.dedent("""\
        ignores:
          - {rule: B506, path: "*.py", why: "old", expires: 2020-01-01}
        """))
    expired = _invoke(str(tmp_path), "--tool", "bandit", "--fail-on", "MEDIUM")
    assert expired.exit_code == 1 and "expired 2020-01-01" in expired.stderr


def test_bad_input_exits_2(tmp_path: Path) -> None:
    assert _invoke(str(tmp_path / "nope")).exit_code == 2
    assert _invoke(str(tmp_path), "--image", "a:1", "--input", "x.tar").exit_code == 2
    assert _invoke(str(tmp_path), "--input", str(tmp_path / "missing.tar")).exit_code == 2
    assert _invoke(str(tmp_path), "--fail-on", "SEVERE").exit_code == 2
    assert _invoke(str(tmp_path), "--tool", "nmap").exit_code == 2
    (tmp_path / "scan-ignore.yaml").write_text("ignores:\n  - {rule: B506, path: x}\n")
    bad = _invoke(str(tmp_path), "--tool", "bandit")
    assert bad.exit_code == 2 and "lacks why, expires" in bad.stderr


@needs_tools
@pytest.mark.slow
def test_churnctl_own_tree_passes_at_high() -> None:
    result = _invoke(str(REPO), "--format", "json", "--fail-on", "HIGH")
    data = json.loads(result.stdout)
    assert result.exit_code == 0, [f for f in data["findings"] if f["severity"] == "HIGH"]
    assert data["blocking"] == 0 and data["warnings"] == []
    rendered = [f["path"] for f in data["findings"] if f["path"].startswith("rendered/")]
    labels = {path.split("/")[1] for path in rendered}
    assert labels <= {p.name for p in (REPO / "infra" / "k8s" / "overlays").iterdir()}
    checked = {c["name"] for t in data["tools"] for c in t["checks"] if c["status"] == "checked"}
    assert {"config rendered/staging", "config rendered/production", "code"} <= checked


def test_security_workflow_uploads_one_sarif_category_per_tool() -> None:
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "security.yml").read_text())
    steps = workflow["jobs"]["scan"]["steps"]
    uploads = [s["with"]["category"] for s in steps
               if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif")]
    assert uploads == [f"churnctl-scan/{t}" for t in ("trivy", "bandit", "semgrep", "pip-audit")]
    assert workflow["jobs"]["scan"]["permissions"]["security-events"] == "write"
    assert any("churnctl scan" in str(s.get("run", "")) for s in steps)


@needs_tools
def test_the_profile_binds_scan_options_and_flags_win(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import yaml\n\n\ndef f(t):\n    return yaml.load(t)\n")
    profile = tmp_path / "team.yaml"
    profile.write_text(textwrap.dedent("""\
        name: team
        extends: v1
        scan: {backend: builtin, options: {fail_on: MEDIUM, tools: [bandit]}}
        """))
    bound = _invoke(str(tmp_path), "--profile", str(profile), "--format", "json")
    assert bound.exit_code == 1  # B506 is MEDIUM
    assert [t["tool"] for t in json.loads(bound.stdout)["tools"]] == ["bandit"]
    assert _invoke(str(tmp_path), "--profile", str(profile), "--fail-on", "HIGH").exit_code == 0
    profile.write_text("name: team\nextends: v1\nscan: {backend: builtin, options: {x: 1}}\n")
    bad = _invoke(str(tmp_path), "--profile", str(profile))
    assert bad.exit_code == 2 and "scan option(s) x" in bad.stderr
