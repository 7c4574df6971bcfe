"""DVC as churnctl's orchestrator: `churnctl run` writes dvc.yaml + params.yaml and runs the
real `dvc repro`; dvc.lock records the run; data goes to a DVC remote with `churnctl dvc push`.

`dvc repro` decides what runs. Each DVC stage is `churnctl stage run STAGE`, so a stage DVC
runs still uses churnctl's cache and backends and leaves its row for this process; stages
DVC skips get a `cached` row from their `data/<stage>` output without any stage work.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from churnctl.errors import BackendUnavailable, ChurnctlError, UserError
from churnctl.orchestrators import dvc_pipeline as pipeline
from churnctl.orchestrators import stage_exec
from churnctl.stages import MANIFEST, STAGE_INPUTS, ArtifactRef, Orchestrator, StrictOptions
from churnctl.workspace import STATE_DIR, Workspace

REMOTE_NAME = "churnctl"


class DvcOrchestratorOptions(StrictOptions):
    remote: str = Field(".dvc-remote", description="DVC remote for the data: a directory "
                        "(relative to the workspace) or any DVC remote URL; empty for none")
    init_git: bool = Field(False, description="`git init` a workspace that is in no git repo "
                           "(otherwise DVC runs without git: `dvc init --no-scm`)")


class DvcOrchestrator(Orchestrator):
    name = "dvc"
    description = "dvc.yaml + params.yaml from the profile, `dvc repro`, dvc.lock, DVC remote"
    Options = DvcOrchestratorOptions
    extra = "dvc"
    modules = ("dvc",)

    def execute(self, runner: Any, options: DvcOrchestratorOptions, plans: list[Any],
                record: dict[str, Any], outputs: dict[str, ArtifactRef], *, only: list[str],
                start: str | None, force: bool, progress: Any) -> None:
        workspace: Workspace = runner.workspace
        root = workspace.root
        ensure_project(workspace, options, runner.log)
        name = runner.profile.name
        pipeline.write_if_changed(root / stage_exec.PARAMS_FILE,
                                  pipeline.dump(pipeline.params_for(plans, workspace), name,
                                                pipeline.PARAMS_NOTE))
        pipeline.write_if_changed(root / "dvc.yaml",
                                  pipeline.dump(pipeline.pipeline_for(plans, workspace), name))
        args = ["repro"]
        if only:
            args += ["--single-item", *only]
        elif start:
            args += ["--force", "--downstream", start]
        elif force:
            args += ["--force"]
        env = {stage_exec.RUN_ID_ENV: record["run_id"], "CHURNCTL_WORKSPACE": str(root)}
        if force or start:
            env["CHURNCTL_FORCE"] = "1"  # also bypass churnctl's cache in each stage command
        code, errors = run_dvc(args, root, runner.log, env)
        saved_rows = {step.stage: stage_exec.load_row(workspace, step.stage, record["run_id"])
                      for step in plans}
        # Stages before the one that failed were up to date (or done): they get their rows.
        stop = next((i for i, step in enumerate(plans) if (saved_rows[step.stage] or {}).get(
            "error")), len(plans) if code == 0 else -1)
        failed: dict[str, Any] | None = None
        for index, step in enumerate(plans):
            data = root / stage_exec.DATA_DIR / step.stage
            if step.status == "skip":
                if (data / MANIFEST).exists():
                    outputs[step.stage] = ArtifactRef.load(data)
                continue
            saved = saved_rows[step.stage]
            if saved is not None and saved.get("row") is not None:
                row = saved["row"]
                outputs[step.stage] = ArtifactRef.load(root / row["artifact"])
                if progress is not None:
                    progress(step.stage, step.backend, row["status"], row["seconds"])
            elif saved is not None:
                failed = saved
                row = {"name": step.stage, "backend": step.backend, "status": "failed",
                       "error": saved.get("error")}
                if progress is not None:
                    progress(step.stage, step.backend, "failed", 0.0)
            elif index < stop and (data / MANIFEST).exists():
                row = self._adopt(runner, workspace, step, outputs, progress)
            else:
                continue  # DVC stopped before this stage
            record["stages"].append(row)
            record["metrics"].update(row.get("metrics", {}))
        if failed is not None:
            error = failed.get("error") or "stage failed"
            raise (UserError if failed.get("exit_code") == 2 else ChurnctlError)(error)
        if code != 0:
            raise ChurnctlError(f"dvc repro failed (exit {code}): "
                                f"{errors[-1] if errors else 'see the output above'}")

    def _adopt(self, runner: Any, workspace: Workspace, step: Any,
               outputs: dict[str, ArtifactRef], progress: Any) -> dict[str, Any]:
        """A stage DVC found up to date: its row from data/<stage>, no stage work."""
        exported = ArtifactRef.load(workspace.root / stage_exec.DATA_DIR / step.stage)
        committed = workspace.artifact_dir(step.stage, exported.key)
        # Prefer churnctl's immutable copy: later runs replace data/<stage>, and run records
        # (and `runs.latest_artifact` readers such as serving) must keep pointing at this one.
        artifact = ArtifactRef.load(committed) if (committed / MANIFEST).exists() and \
            ArtifactRef.load(committed).files == exported.files else exported
        inputs = {s: outputs[s] for s in STAGE_INPUTS[step.stage] if s in outputs}
        row = runner.adopt(step.stage, artifact, inputs, progress)
        row["reason"] = "dvc: unchanged"
        outputs[step.stage] = artifact
        return row


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PATH": pipeline.venv_path(), "DVC_NO_ANALYTICS": "1",
           **(extra or {})}
    if "CHURNCTL_FORCE" not in (extra or {}):
        env.pop("CHURNCTL_FORCE", None)
    return env


def run_dvc(args: list[str], root: Path, log: Any, env: dict[str, str] | None = None,
            ) -> tuple[int, list[str]]:
    """Run the real DVC CLI in `root`, streaming its output to `log`; (exit code, errors).

    Error lines are held back: the caller turns them into one error message, and a stage
    command's own `error:` line is already in its row.
    """
    command = [sys.executable, "-m", "dvc", *args]
    errors: list[str] = []
    with subprocess.Popen(command, cwd=root, env=dvc_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.rstrip()
            if text.startswith(("ERROR:", "error:")):
                errors.append(text.removeprefix("ERROR:").removeprefix("error:").strip())
            elif text:
                log(text)
    return proc.returncode, errors


def _check(args: list[str], root: Path, log: Any) -> None:
    code, errors = run_dvc(args, root, log)
    if code != 0:
        raise ChurnctlError(f"dvc {' '.join(args)} failed: {errors[-1] if errors else code}")


def git_toplevel(root: Path) -> Path | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root,
                          capture_output=True, text=True, check=False)
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def _append_lines(path: Path, lines: list[str]) -> None:
    existing = path.read_text().splitlines() if path.exists() else []
    missing = [line for line in lines if line not in existing]
    if missing:
        path.write_text("\n".join([*existing, *missing]) + "\n")


def _local_remote(remote: str, root: Path) -> Path | None:
    return None if not remote or "://" in remote else (root / remote).resolve()


def ensure_project(workspace: Workspace, options: DvcOrchestratorOptions, log: Any,
                   init_git: bool = False) -> None:
    """`dvc init` the workspace once (in git when there is or should be a repo), and keep the
    default remote at the configured one. A set-up workspace costs no DVC call here."""
    root = workspace.root
    root.mkdir(parents=True, exist_ok=True)
    local = _local_remote(options.remote, root)
    if not (root / ".dvc").is_dir():
        top = git_toplevel(root)
        if top is None and (options.init_git or init_git):
            if shutil.which("git") is None:
                raise BackendUnavailable("init_git needs the git executable on PATH")
            subprocess.run(["git", "init", "-q"], cwd=root, check=True)
            ignored = [f"/{STATE_DIR}/"]
            if local is not None and local.is_relative_to(root.resolve()):
                ignored.append(f"/{local.relative_to(root.resolve()).as_posix()}/")
            _append_lines(root / ".gitignore", ignored)
            top = root.resolve()
        init = ["init", "-q"]
        if top is None:
            init.append("--no-scm")
        elif top != root.resolve():
            init.append("--subdir")
        _check(init, root, log)
        # No update check or analytics calls from a pipeline run (both go to the network).
        _append_lines(root / ".dvc" / "config.local", ["[core]", "    check_update = false",
                                                       "    analytics = false"])
        _append_lines(root / ".dvcignore", [f"/{STATE_DIR}/"])
        log(f"initialised DVC in {root}" + (" (git)" if top is not None else " (no git)"))
    if options.remote and configured_remote(root) != _remote_target(options.remote, root):
        # Given as in the profile: DVC stores a relative path relative to .dvc/, so the
        # project stays portable between clones.
        _check(["remote", "add", "--default", "--force", REMOTE_NAME, options.remote], root, log)


def _remote_target(remote: str, root: Path) -> str:
    local = _local_remote(remote, root)
    return str(local) if local is not None else remote


def configured_remote(root: Path) -> str | None:
    """The default remote's URL from .dvc/config (local paths made absolute), if any."""
    path = root / ".dvc" / "config"
    if not path.exists():
        return None
    parser = configparser.ConfigParser(interpolation=None)  # URLs may hold '%'
    parser.read(path)
    name = parser.get("core", "remote", fallback=None)
    section = f"'remote \"{name}\"'"
    if name is None or not parser.has_section(section):
        return None
    url = parser.get(section, "url", fallback="")
    if url and "://" not in url:
        return str((path.parent / url).resolve())
    return url
