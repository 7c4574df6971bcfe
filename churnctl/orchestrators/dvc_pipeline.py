"""`dvc.yaml` and `params.yaml` from a profile's plan: one DVC stage per churnctl stage.

Each DVC stage runs `churnctl stage run STAGE`, which reads its section of `params.yaml`,
its upstream outputs from `data/<upstream>` and writes `data/<stage>`. What churnctl's own
cache key covers is what DVC sees, so DVC invalidates exactly the stages churnctl would, and
neither file names a path outside the workspace (a teammate's clone, a container or a CI
checkout finds every stage up to date):

- `params.yaml:<stage>`: the backend and every option of that stage (defaults included), and
  three reserved keys that `churnctl stage run` ignores:
  - `code_version`: the digest of the stage's code version (code_version.py: every module its
    backend imports, the library versions, the Python version), the same function the runner
    keys its cache with;
  - `libraries`: the Python version and the library versions in that digest, readable, so
    `dvc params diff` says "scikit-learn 1.7.2 -> 1.8.0";
  - `input_files`: content hashes of external input files outside the workspace (the
    generator script in the installed package, a user's CSV elsewhere), keyed by a portable
    name (`churnctl/...` inside the package, else the path as the options spell it);
- the upstream `data/<stage>` directories;
- external input files inside the workspace, by relative path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import churnctl
from churnctl.atomic import write_text
from churnctl.code_version import backend_code_version
from churnctl.errors import ChurnctlError, UserError
from churnctl.hashing import file_sha256
from churnctl.orchestrators.stage_exec import (
    CODE_VERSION_KEY,
    DATA_DIR,
    INPUT_FILES_KEY,
    LIBRARIES_KEY,
    METRICS_DIR,
    RESERVED_KEYS,
)
from churnctl.stages import STAGE_INPUTS
from churnctl.workspace import Workspace

HEADER = ("# Written by churnctl from profile {profile} on every `churnctl run`: change the\n"
          "# profile (or use --set), not this file.\n")
PARAMS_NOTE = ("# Per stage: backend, options, and what else its output depends on: code_version\n"
               "# (its modules, libraries and Python), libraries (readable), input_files (hashes\n"
               "# of input files outside the workspace).\n")
_PACKAGE = Path(churnctl.__file__).resolve().parent


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def external_files(step: Any, workspace: Workspace) -> tuple[list[str], dict[str, str]]:
    """(deps inside the workspace, relative; {portable name: sha256} of the files outside)."""
    deps: list[str] = []
    outside: dict[str, str] = {}
    root = workspace.root
    for path in step.cls().external_inputs(step.options, workspace):
        if _inside(path, root):
            deps.append(path.resolve().relative_to(root.resolve()).as_posix())
            continue
        if not path.is_file():
            raise UserError(f"input file {path} not found; check the path in the profile "
                                "or --set")
        outside[_portable_name(path, workspace)] = file_sha256(path)
    # Digests of workspace state that is no whole file (a GX project's user part): DVC sees
    # them as params, since a file dependency would also change with what the stage rewrites.
    outside.update(step.cls().input_digests(step.options, workspace))
    return deps, outside


def _portable_name(path: Path, workspace: Workspace) -> str:
    """A name for an input file outside the workspace that is the same on every machine."""
    resolved = path.resolve()
    if resolved.is_relative_to(_PACKAGE):  # shipped with churnctl: wherever it is installed
        return resolved.relative_to(_PACKAGE.parent).as_posix()
    if path.is_relative_to(workspace.root):  # spelled relative to the workspace (../data/x)
        return os.path.normpath(path.relative_to(workspace.root)).replace(os.sep, "/")
    return str(path)  # the options give an absolute path: that is its name


def stage_params(step: Any, workspace: Workspace) -> dict[str, Any]:
    """One stage's `params.yaml` section: backend, options, and the reserved keys."""
    options = step.options.model_dump(mode="json")
    clash = sorted(set(options) & {"backend", *RESERVED_KEYS})
    if clash:
        raise ChurnctlError(f"{step.stage} ({step.backend}): option {clash[0]!r} is a reserved "
                            "params.yaml key; rename the option in the backend")
    section: dict[str, Any] = {"backend": step.backend, **options}
    if step.cls is None:
        return section
    version = backend_code_version(step.cls, workspace.state / "cache")
    section[CODE_VERSION_KEY] = version.digest
    section[LIBRARIES_KEY] = {"python": version.python, **version.distributions}
    _, outside = external_files(step, workspace)
    if outside:
        section[INPUT_FILES_KEY] = dict(sorted(outside.items()))
    return section


def params_for(plans: list[Any], workspace: Workspace) -> dict[str, dict[str, Any]]:
    """`params.yaml`: per stage, its backend, all of its options (defaults included) and
    the reserved keys for its code version and input files outside the workspace."""
    return {step.stage: stage_params(step, workspace)
            for step in plans if step.options is not None}


def stage_command(stage: str) -> str:
    return f"churnctl stage run {stage}"


def pipeline_for(plans: list[Any], workspace: Workspace) -> dict[str, Any]:
    """The `stages:` of dvc.yaml for the planned stages, in pipeline order."""
    stages: dict[str, Any] = {}
    for step in plans:
        if step.cls is None:
            continue
        deps = [f"{DATA_DIR}/{up}" for up in STAGE_INPUTS[step.stage]]
        deps += external_files(step, workspace)[0]
        stage: dict[str, Any] = {"cmd": stage_command(step.stage)}
        if deps:
            stage["deps"] = list(dict.fromkeys(deps))
        stages[step.stage] = {
            **stage,
            "params": [step.stage],  # the section: options, code version, outside files
            "outs": [f"{DATA_DIR}/{step.stage}"],
            "metrics": [{f"{METRICS_DIR}/{step.stage}.json": {"cache": False}}],
        }
    return {"stages": stages}


def dump(data: dict[str, Any], profile: str, note: str = "") -> str:
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
    return HEADER.format(profile=profile) + note + body


def write_if_changed(path: Path, text: str) -> bool:
    """Atomic write, skipped when the content is the same (keeps mtimes, and DVC's state)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True


def venv_path() -> str:
    """PATH with this Python's bin directory first, so DVC finds this churnctl and python."""
    import sys

    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
