"""`dvc.yaml` and `params.yaml` from a profile's plan: one DVC stage per churnctl stage.

Each DVC stage runs `churnctl stage run STAGE`, which reads its section of `params.yaml`,
its upstream outputs from `data/<upstream>` and writes `data/<stage>`. Its deps are what
churnctl's own cache key covers, so DVC invalidates exactly the stages churnctl would:

- `params.yaml:<stage>`: the backend and every option of that stage (defaults included);
- the upstream `data/<stage>` directories;
- the source files of the backend module and the domain modules it lists (`code_modules`),
  the same files `runner.code_version` hashes;
- external input files (the generator script, a user's CSV files).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from churnctl.atomic import write_text
from churnctl.orchestrators.stage_exec import DATA_DIR, METRICS_DIR
from churnctl.stages import STAGE_INPUTS, Backend
from churnctl.workspace import Workspace

HEADER = ("# Written by churnctl from profile {profile} on every `churnctl run`: change the\n"
          "# profile (or use --set), not this file.\n")


def code_files(cls: type[Backend]) -> list[Path]:
    """The backend's module and its `code_modules`: what `runner.code_version` hashes."""
    paths = []
    for name in (cls.__module__, *cls.code_modules):
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            paths.append(Path(spec.origin))
    return paths


def _dep(path: Path, workspace: Workspace) -> str:
    """Relative to the workspace when inside it (portable between clones), else absolute."""
    root = workspace.root.resolve()
    path = path.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def params_for(plans: list[Any]) -> dict[str, dict[str, Any]]:
    """`params.yaml`: per stage, its backend and all of its options (defaults included)."""
    return {step.stage: {"backend": step.backend, **step.options.model_dump(mode="json")}
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
        deps += [_dep(path, workspace) for path in code_files(step.cls)]
        deps += [_dep(path, workspace)
                 for path in step.cls().external_inputs(step.options, workspace)]
        stages[step.stage] = {
            "cmd": stage_command(step.stage),
            "deps": list(dict.fromkeys(deps)),
            "params": [step.stage],
            "outs": [f"{DATA_DIR}/{step.stage}"],
            "metrics": [{f"{METRICS_DIR}/{step.stage}.json": {"cache": False}}],
        }
    return {"stages": stages}


def dump(data: dict[str, Any], profile: str) -> str:
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
    return HEADER.format(profile=profile) + body


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
