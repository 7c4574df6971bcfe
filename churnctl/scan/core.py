"""`churnctl scan`: prepare the target (render manifests), run each scanner, apply ignores."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from churnctl.errors import UserError
from churnctl.scan.ignores import DEFAULT_NAME, apply_ignores, load_ignores
from churnctl.scan.model import NOT_CHECKED, SEVERITIES, Check, Scanner, Target, ToolResult
from churnctl.scan.output import ScanResult

SKIP_DIRS = (".git", ".venv", "venv", "node_modules", ".churnctl", "__pycache__",
             ".pytest_cache", ".ruff_cache", "build", "dist", "reports", ".dvc")
TOOLS = ("trivy", "bandit", "semgrep", "pip-audit")


def scanners(names: tuple[str, ...] = TOOLS) -> list[Scanner]:
    """The scanners by name, in report order."""
    from churnctl.scan.code_tools import BanditScanner, SemgrepScanner
    from churnctl.scan.pip_audit_tool import PipAuditScanner
    from churnctl.scan.trivy_tool import TrivyScanner

    known = {"trivy": TrivyScanner, "bandit": BanditScanner, "semgrep": SemgrepScanner,
             "pip-audit": PipAuditScanner}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown scanner(s) {', '.join(unknown)}: use {', '.join(TOOLS)}")
    return [known[n]() for n in names]


def _render(root: Path, overlays: list[str], work: Path) -> tuple[dict[str, Path], list[Check]]:
    """Rendered manifests of each overlay of root/infra/k8s (all overlays when none named)."""
    from churnctl.deploy.render import render, write_manifests

    k8s = root / "infra" / "k8s"
    if not (k8s / "overlays").is_dir():
        return {}, []
    names = overlays or sorted(p.name for p in (k8s / "overlays").iterdir() if p.is_dir())
    out: dict[str, Path] = {}
    checks: list[Check] = []
    for name in names:
        label = f"rendered/{name}"
        try:
            out[label] = write_manifests(render(name, root=k8s), work / name).parent
        except UserError as exc:
            checks.append(Check("trivy", f"config {label}", NOT_CHECKED, f"render failed: {exc}"))
    return out, checks


def run_scan(
    root: Path,
    *,
    fail_on: str = "HIGH",
    overlays: list[str] = (),
    image: str | None = None,
    input_tar: Path | None = None,
    trivy_db: Path | None = None,
    out_dir: Path | None = None,
    ignore_file: Path | None = None,
    skip: list[str] = (),
    tools: tuple[str, ...] = TOOLS,
    progress: Callable[[str], None] = lambda _: None,
) -> ScanResult:
    """Scan `root` with every tool and return one result (raises UserError on bad input)."""
    fail_on = fail_on.upper()
    if fail_on not in SEVERITIES[1:]:
        raise UserError(f"--fail-on {fail_on}: use LOW, MEDIUM, HIGH or CRITICAL")
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    if image and input_tar:
        raise UserError("--image and --input exclude each other: scan a registry image or a tar")
    if input_tar is not None and not input_tar.is_file():
        raise UserError(f"--input {input_tar}: no such image tar")
    if trivy_db is not None and not trivy_db.is_dir():
        raise UserError(f"--trivy-db {trivy_db} is not a directory")
    root = root.resolve()
    ignore_path = ignore_file or (root / DEFAULT_NAME)
    if ignore_file is not None and not ignore_file.is_file():
        raise UserError(f"--ignore-file {ignore_file}: no such file")
    ignores = load_ignores(ignore_path) if ignore_path.is_file() else []
    chosen = scanners(tools)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: list[ToolResult] = []
    with tempfile.TemporaryDirectory(prefix="churnctl-scan-") as work:
        manifests, render_checks = _render(root, list(overlays), Path(work))
        skip_dirs = [d for d in (*SKIP_DIRS, *skip) if (root / d).exists()]
        if manifests or render_checks:
            # kustomize patches are fragments (no securityContext of their own): Trivy judges
            # the rendered objects instead, never the raw tree.
            skip_dirs.append("infra/k8s")
        target = Target(root=root, manifests=manifests, skip_dirs=skip_dirs, image=image,
                        input_tar=input_tar, trivy_db=trivy_db, out_dir=out_dir)
        for scanner in chosen:
            progress(scanner.name)
            result = scanner.run(target)
            if scanner.name == "trivy":
                result.checks[:0] = render_checks
            results.append(result)
    warnings = apply_ignores([f for r in results for f in r.findings], ignores)
    return ScanResult(str(root), fail_on, results, warnings, time.perf_counter() - started)
