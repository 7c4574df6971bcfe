"""bandit and semgrep over Python code, with the rules shipped in churnctl/scan/rules/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from churnctl.scan.model import (
    CHECKED,
    NOT_CHECKED,
    Check,
    Finding,
    Target,
    ToolResult,
    find_tool,
    missing,
    relative,
    run_tool,
)

RULES = Path(__file__).resolve().parent / "rules"
_SEMGREP_LEVELS = {"ERROR": "HIGH", "WARNING": "MEDIUM", "INFO": "LOW"}


def _excludes(target: Target) -> list[str]:
    return [str(target.root / d) for d in target.skip_dirs]


class BanditScanner:
    name = "bandit"

    def run(self, target: Target) -> ToolResult:
        binary = find_tool("bandit", "CHURNCTL_BANDIT")
        if binary is None:
            return missing("bandit", "install churnctl[scan]")
        result = ToolResult("bandit", info_uri="https://bandit.readthedocs.io")
        args = [binary, "-r", str(target.root), "-c", str(RULES / "bandit.yaml"), "-f", "json",
                "-q", "-x", ",".join(_excludes(target))]
        try:
            proc = run_tool(args, target.timeout_s)
            report = json.loads(proc.stdout)
        except (json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
            result.checks.append(Check("bandit", "code", NOT_CHECKED, f"bandit failed: {exc}"))
            return result
        for item in report.get("results", []):
            result.rules.setdefault(item["test_id"], item["test_name"])
            result.findings.append(Finding(
                "bandit", item["test_id"], item["issue_severity"].upper(), item["issue_text"],
                relative(item["filename"], target.root), int(item.get("line_number") or 0)))
        errors = report.get("errors") or []
        detail = f"{len(errors)} file(s) could not be parsed" if errors else ""
        result.checks.append(Check("bandit", "code", CHECKED, detail))
        result.version = _version([binary, "--version"])
        return result


class SemgrepScanner:
    name = "semgrep"

    def run(self, target: Target) -> ToolResult:
        # semgrep pins opentelemetry 1.37 (fastapi needs >= 1.44): it lives in its own venv,
        # `<venv>/tools/semgrep`, which `make test` creates; PATH or $CHURNCTL_SEMGREP also work.
        binary = find_tool("semgrep", "CHURNCTL_SEMGREP",
                           [Path(sys.prefix) / "tools" / "semgrep" / "bin" / "semgrep"])
        if binary is None:
            return missing("semgrep", "pip install semgrep (in its own venv: it pins "
                                      "opentelemetry) and put it on PATH or set CHURNCTL_SEMGREP")
        result = ToolResult("semgrep", info_uri="https://semgrep.dev")
        args = [binary, "scan", "--config", str(RULES / "semgrep.yml"), "--json", "--quiet",
                "--metrics=off", "--disable-version-check", "--oss-only"]
        for skip in target.skip_dirs:
            args += ["--exclude", skip]
        args.append(str(target.root))
        try:
            proc = run_tool(args, target.timeout_s, cwd=target.root)
            report = json.loads(proc.stdout)
        except (json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
            result.checks.append(Check("semgrep", "code", NOT_CHECKED, f"semgrep failed: {exc}"))
            return result
        for item in report.get("results", []):
            extra = item.get("extra", {})
            rule = item["check_id"].rsplit(".", 2)[-2] + "." + item["check_id"].rsplit(".", 1)[-1]
            rule = rule if rule.startswith("churnctl.") else item["check_id"]
            severity = (extra.get("metadata", {}).get("churnctl-severity")
                        or _SEMGREP_LEVELS.get(extra.get("severity", ""), "MEDIUM"))
            result.rules.setdefault(rule, extra.get("message", rule))
            result.findings.append(Finding(
                "semgrep", rule, severity.upper(), extra.get("message", rule),
                relative(item["path"], target.root), int(item.get("start", {}).get("line", 0))))
        errors = [e for e in report.get("errors", []) if e.get("level") == "error"]
        if errors:
            first = errors[0].get("message", "")[:200]
            result.checks.append(Check("semgrep", "code", NOT_CHECKED, f"semgrep error: {first}"))
        else:
            result.checks.append(Check("semgrep", "code", CHECKED))
        result.version = report.get("version", "")
        return result


def _version(args: list[str]) -> str:
    try:
        out = run_tool(args, 30).stdout.split()
    except subprocess.TimeoutExpired:
        return ""
    return out[1] if len(out) > 1 else ""
