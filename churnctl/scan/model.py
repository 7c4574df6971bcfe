"""The one interface every scanner implements, and the result types they share.

A scanner turns a `Target` into a `ToolResult`: findings (normalized severity, rule, file,
line) and checks, each either ``checked`` or ``not checked`` with the reason. A check that
could not run is never reported as clean.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
CHECKED, NOT_CHECKED = "checked", "not checked"
# Outbound telemetry is noise here and worse elsewhere: every tool subprocess gets these.
QUIET_ENV = {"DO_NOT_TRACK": "1", "SEMGREP_SEND_METRICS": "off", "TRIVY_DISABLE_VEX_NOTICE": "1",
             "SEMGREP_ENABLE_VERSION_CHECK": "0"}


def rank(severity: str) -> int:
    """Position of a severity in SEVERITIES (unknown names rank lowest)."""
    upper = severity.upper()
    return SEVERITIES.index(upper) if upper in SEVERITIES else 0


@dataclass
class Finding:
    tool: str
    rule: str
    severity: str  # one of SEVERITIES
    message: str
    path: str  # relative to the scanned root, '/'-separated
    line: int = 0
    category: str = "code"  # code | misconfig | secret | license | dependency | vulnerability
    ignored: str = ""  # the ignore file's reason when a reasoned ignore matched

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Check:
    tool: str
    name: str
    status: str  # CHECKED | NOT_CHECKED
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ToolResult:
    tool: str
    version: str = ""
    findings: list[Finding] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # rule id -> short description
    info_uri: str = ""


@dataclass
class Target:
    """What one `churnctl scan` looks at."""

    root: Path
    # Rendered Kubernetes manifests: a label ("rendered/staging") -> the directory holding them.
    manifests: dict[str, Path] = field(default_factory=dict)
    skip_dirs: list[str] = field(default_factory=list)  # relative to root
    image: str | None = None
    input_tar: Path | None = None
    trivy_db: Path | None = None
    out_dir: Path | None = None
    timeout_s: float = 300.0


class Scanner(Protocol):
    name: str

    def run(self, target: Target) -> ToolResult:
        """Scan the target; a missing tool or unreachable data is a NOT_CHECKED check."""
        ...


def find_tool(name: str, env_var: str | None = None, extra: list[Path] = ()) -> str | None:
    """A tool's executable: $env_var, then beside this Python, then `extra`, then PATH."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    candidates = [Path(sys.executable).parent / name, *extra]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def run_tool(args: list[str], timeout_s: float, cwd: Path | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """Run a scanner with telemetry off; raises subprocess.TimeoutExpired on timeout."""
    env = {**os.environ, **QUIET_ENV}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, cwd=cwd,
                          env=env, check=False)


def relative(path: str | Path, root: Path) -> str:
    """`path` relative to `root` with '/' separators, or as given when outside it."""
    p = Path(path)
    if not p.is_absolute():
        p = (root / p)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def missing(tool: str, hint: str) -> ToolResult:
    """The result of a scanner whose tool is not installed."""
    check = Check(tool, tool, NOT_CHECKED, f"{tool} not found; {hint}")
    return ToolResult(tool=tool, checks=[check])
