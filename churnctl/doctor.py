"""What a profile needs on this machine: per binding, its modules (with versions) and
binaries, or what is missing and the pip line that installs it.

Shared by `churnctl doctor` and `churnctl profile upgrade` (which runs it on the target).
"""

from __future__ import annotations

import platform
import subprocess
from typing import Any

from churnctl.profile import Profile

_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "kubernetes_validate": "kubernetes-validate",
    "yaml": "pyyaml",
}


def binary_version(name: str) -> str:
    """First line of `NAME --version` (or `NAME version`); the path when neither answers."""
    from churnctl.registry import find_binary

    path = find_binary(name)
    if path is None:
        return ""
    for flag in ("--version", "version"):
        try:
            done = subprocess.run(
                [path, flag], capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = (done.stdout or done.stderr).strip().splitlines()
        if done.returncode == 0 and text:
            return text[0][:60]
    return path


def doctor_checks(profile: Profile, versions: bool = True) -> list[dict[str, Any]]:
    """One row per binding: binding, backend, ok, detail, extra, install, binaries.

    `versions=False` skips running binaries for their version (a plan needs only names)."""
    from importlib.metadata import PackageNotFoundError, version

    from churnctl.registry import backend_class, describe

    rows: list[dict[str, Any]] = [{"binding": "python", "backend": "", "ok": True,
                                   "detail": platform.python_version(), "extra": None,
                                   "install": "", "binaries": []}]
    for kind, binding in profile.bindings().items():
        info = describe(kind, binding.backend)
        binaries: list[str] = []
        if not info.implemented:
            detail = "planned, not in this release"
        elif not info.installed:
            detail = f"missing {', '.join(info.missing)}; {info.install_hint}"
        else:
            cls = backend_class(kind, binding.backend)
            binaries = list(cls.binaries)
            found = []
            for module in cls.modules:
                try:
                    found.append(f"{module} {version(_DISTRIBUTIONS.get(module, module))}")
                except PackageNotFoundError:
                    found.append(module)
            found += [f"{exe}: {binary_version(exe)}" if versions else exe for exe in binaries]
            detail = "; ".join(found) or "ok"
        rows.append({"binding": kind, "backend": binding.backend, "ok": info.installed,
                     "detail": detail, "extra": info.extra, "install": info.install_hint,
                     "binaries": binaries})
    return rows
