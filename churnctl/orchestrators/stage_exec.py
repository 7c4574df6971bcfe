"""One stage, run for an outside orchestrator: parameters in, input directories in, one output
directory out.

DVC and Kubeflow both see a stage as a command with input and output paths. Here that
command runs the stage with the ordinary Runner (so churnctl's content-addressed cache,
atomic commit and `publish` all apply) and then exports the committed artifact, with its
`manifest.json`, to the path the orchestrator tracks (`data/<stage>` for DVC). An exported
directory is itself a valid artifact: the next stage reads it back with `ArtifactRef.load`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from churnctl.atomic import write_json
from churnctl.errors import UserError
from churnctl.stages import MANIFEST, PIPELINE_STAGES, STAGE_INPUTS, ArtifactRef
from churnctl.workspace import Workspace

PARAMS_FILE = "params.yaml"
DATA_DIR = "data"
METRICS_DIR = "metrics"
ROWS_DIR = "stage-rows"  # under .churnctl/: each stage's row for the parent `churnctl run`
RUN_ID_ENV = "CHURNCTL_RUN_ID"
# Keys of a params.yaml section that are no options: what else the stage's output depends on
# (dvc_pipeline.py writes them so that DVC sees it); `stage run` leaves them out.
CODE_VERSION_KEY = "code_version"
LIBRARIES_KEY = "libraries"
INPUT_FILES_KEY = "input_files"
RESERVED_KEYS = (CODE_VERSION_KEY, LIBRARIES_KEY, INPUT_FILES_KEY)


def read_params(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise UserError(f"{path} not found; `churnctl run --profile v2` writes it")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of stage -> {{backend, options...}}")
    return data


def section_binding(section: Any, stage: str, source: str) -> tuple[str, dict[str, Any]]:
    """(backend, options) from one params section: `{backend: NAME, option: value, ...}`;
    the reserved keys (code version, input file hashes) are for DVC, not options."""
    if not isinstance(section, dict) or not section.get("backend"):
        raise UserError(f"{source}: {stage}: expected a mapping with `backend:` and the "
                        "stage's options")
    return str(section["backend"]), {k: v for k, v in section.items()
                                     if k != "backend" and k not in RESERVED_KEYS}


def input_paths(stage: str, workspace: Workspace, given: dict[str, Path]) -> dict[str, Path]:
    """Upstream artifact directories: as given, else `data/<upstream>` in the workspace."""
    unknown = sorted(set(given) - set(STAGE_INPUTS[stage]))
    if unknown:
        raise UserError(f"--input {unknown[0]}: {stage} reads only "
                        f"{', '.join(STAGE_INPUTS[stage]) or 'nothing'}")
    return {up: given.get(up, workspace.root / DATA_DIR / up) for up in STAGE_INPUTS[stage]}


def load_input(name: str, path: Path) -> ArtifactRef:
    if not (path / MANIFEST).is_file():
        raise UserError(f"{path}: no {MANIFEST}, so no output of stage {name!r} is there; run "
                        f"that stage first (or `churnctl dvc pull` to fetch it)")
    return ArtifactRef.load(path)


def export(artifact: ArtifactRef, out: Path) -> None:
    """Copy an artifact to `out` (hard links where possible: artifacts are immutable).

    The whole tree: `artifact.files` names every file by its relative POSIX path, nested
    directories included. Built in a temp directory beside `out` and renamed into place; an
    orchestrator deletes its old output before running the step, so readers never see a
    half-written one.
    """
    if out.exists() and out.resolve() == artifact.path.resolve():
        return
    names = [*artifact.files, MANIFEST]
    for name in names:
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
            raise UserError(f"{artifact.path / MANIFEST}: file {name!r} is outside the "
                            "artifact; the manifest is damaged, run the stage again")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name in names:
            source, target = artifact.path / name, tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another filesystem, or links not allowed
                shutil.copy2(source, target)
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)
        elif out.exists() or out.is_symlink():
            out.unlink()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def run_stage(workspace: Workspace, stage: str, backend: str, options: dict[str, Any],
              inputs: dict[str, Path], out: Path, *, force: bool = False, log: Any = print,
              metrics_file: Path | None = None, source: str = PARAMS_FILE) -> dict[str, Any]:
    """Run `stage` with `backend`/`options` on the given input directories; export to `out`."""
    from churnctl.profile import Profile, StageBinding
    from churnctl.registry import backend_class
    from churnctl.runner import Runner

    if stage not in PIPELINE_STAGES:
        raise UserError(f"unknown stage {stage!r}; pipeline stages: {', '.join(PIPELINE_STAGES)}")
    cls = backend_class(stage, backend)
    try:
        cls.Options.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{source}: {stage}.{where}: {err['msg']}") from None
    # A step on its own (a Kubeflow pod) has no profile; the tracking server it is given is
    # where production is recorded, so the gate compares against that champion.
    shared = os.environ.get("MLFLOW_TRACKING_URI")
    tracking = (StageBinding(backend="mlflow", options={"tracking_uri": shared})
                if shared and stage == "train" else None)
    profile = Profile(name=f"{stage}-step", tracking=tracking,
                      stages={stage: StageBinding(backend=backend, options=options)})
    runner = Runner(profile, workspace, log=log)
    refs = {name: load_input(name, path) for name, path in inputs.items()}
    row = runner.run_one(stage, refs, force=force)
    artifact = ArtifactRef.load(_resolve(workspace, row["artifact"]))
    export(artifact, out)
    if metrics_file is not None:
        write_json(metrics_file, row.get("metrics", {}))
    return row


def _resolve(workspace: Workspace, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else workspace.root / candidate


def row_path(workspace: Workspace, stage: str) -> Path:
    return workspace.state / ROWS_DIR / f"{stage}.json"


def save_row(workspace: Workspace, stage: str, row: dict[str, Any] | None,
             error: str | None = None, exit_code: int = 0) -> None:
    """Leave the stage's outcome for the `churnctl run` that started the orchestrator."""
    write_json(row_path(workspace, stage), {"run_id": os.environ.get(RUN_ID_ENV, ""),
                                            "row": row, "error": error, "exit_code": exit_code})


def load_row(workspace: Workspace, stage: str, run_id: str) -> dict[str, Any] | None:
    """What the stage command of run `run_id` reported, if it ran in that run."""
    path = row_path(workspace, stage)
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("run_id") == run_id else None
