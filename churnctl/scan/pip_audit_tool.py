"""pip-audit over the installed environment, always with --strict: without it pip-audit exits 0
when it cannot reach its vulnerability sources, which would read as a clean bill."""

from __future__ import annotations

import json
import subprocess

from churnctl.scan.model import (
    CHECKED,
    NOT_CHECKED,
    Check,
    Finding,
    Target,
    ToolResult,
    find_tool,
    missing,
    run_tool,
)


class PipAuditScanner:
    name = "pip-audit"

    def run(self, target: Target) -> ToolResult:
        binary = find_tool("pip-audit", "CHURNCTL_PIP_AUDIT")
        if binary is None:
            return missing("pip-audit", "install churnctl[scan]")
        result = ToolResult("pip-audit", info_uri="https://pypi.org/project/pip-audit/")
        args = [binary, "--strict", "--format", "json", "--progress-spinner", "off"]
        try:
            proc = run_tool(args, min(target.timeout_s, 120))
        except subprocess.TimeoutExpired:
            result.checks.append(Check("pip-audit", "dependencies", NOT_CHECKED, "timed out"))
            return result
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            report = None
        if proc.returncode != 0 and (report is None or "dependencies" not in report):
            reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result.checks.append(Check("pip-audit", "dependencies", NOT_CHECKED,
                                       f"could not check: {reason[:300]}"))
            return result
        for dep in report.get("dependencies", []):
            for vuln in dep.get("vulns", []):
                result.rules.setdefault(vuln["id"], vuln.get("description", "")[:200])
                fixed = ", ".join(vuln.get("fix_versions", [])) or "none"
                # pip-audit carries no severity: a known vulnerability counts as HIGH.
                result.findings.append(Finding(
                    "pip-audit", vuln["id"], "HIGH",
                    f"{dep['name']} {dep.get('version', '')}: fixed in {fixed}",
                    f"{dep['name']}=={dep.get('version', '')}", 0, "dependency"))
        result.checks.append(Check("pip-audit", "dependencies", CHECKED,
                                   f"{len(report.get('dependencies', []))} packages"))
        return result
