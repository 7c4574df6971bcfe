"""Plan and execute a profile's pipeline with a build-system cache.

A stage's cache key covers its backend, its options, the content hashes of its inputs and
external files, and its code version (every module its backend imports, the versions of the
libraries it uses, the Python version: code_version.py). Outputs are committed by renaming a
finished, fsynced temp directory, so a run killed at any point leaves only whole artifacts and
the next run resumes from them; a cache hit is trusted only while every recorded file is
still there with its recorded size (`verify` re-hashes them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from churnctl import __version__, tracing
from churnctl.artifacts import ArtifactCorrupt, declared_contents, tree_files
from churnctl.atomic import atomic_dir, sweep_stale, write_json, write_text
from churnctl.cache_key import LATEST, components, explain
from churnctl.errors import UserError
from churnctl.hashing import value_sha256
from churnctl.lock import workspace_lock
from churnctl.profile import Profile
from churnctl.registry import backend_class, missing_requirements, require_available
from churnctl.stages import (
    MANIFEST,
    PIPELINE_STAGES,
    STAGE_INPUTS,
    ArtifactRef,
    Backend,
    Orchestrator,
    StageContext,
)
from churnctl.workspace import Workspace


@dataclass
class StagePlan:
    stage: str
    backend: str
    status: str  # cached | run | skip | unavailable
    reason: str
    key: str = ""
    components: dict[str, Any] = field(default_factory=dict)
    cls: type[Backend] | None = None
    options: Any = None


def _committed(workspace: Workspace, stage: str, key: str, verify: bool = False,
               ) -> ArtifactRef | None:
    """The committed artifact for `key`, or None; raises ArtifactCorrupt when it is damaged.

    Every hit checks that each recorded file exists with its recorded size (one stat each);
    `verify` also re-hashes their content.
    """
    path = workspace.artifact_dir(stage, key)
    if not (path / MANIFEST).exists():
        return None
    ref = ArtifactRef.load(path)
    problems = ref.changed_files() if verify else ref.missing_files()
    if problems:
        raise ArtifactCorrupt(f"{stage} output {path} is damaged: {', '.join(problems[:3])}")
    return ref


def _usable(workspace: Workspace, stage: str, key: str, verify: bool = False,
            ) -> tuple[ArtifactRef | None, str]:
    """(artifact, "") on a sound hit; (None, why it must run) when missing or damaged."""
    try:
        return _committed(workspace, stage, key, verify), ""
    except ArtifactCorrupt as exc:
        return None, str(exc).split(": ", 1)[-1].join(("output damaged (", ")"))


def _latest_committed(workspace: Workspace, stage: str) -> ArtifactRef | None:
    latest = workspace.artifacts / stage / LATEST
    if not latest.exists():
        return None
    return _usable(workspace, stage, latest.read_text().strip())[0]


class Runner:
    def __init__(self, profile: Profile, workspace: Workspace, log: Any = print,
                 verify: bool = False, promote: bool = False) -> None:
        self.profile = profile
        self.workspace = workspace
        self.log = log
        self.verify = verify  # re-hash cached artifacts instead of checking sizes only
        self.promote = promote  # override the promotion gate (`run --promote`)

    def selected(self, only: list[str], start: str | None) -> list[str]:
        for name in [*only, *([start] if start else [])]:
            if name not in PIPELINE_STAGES:
                raise UserError(f"unknown stage {name!r}; pipeline stages: "
                                f"{', '.join(PIPELINE_STAGES)}")
        return [s for s in PIPELINE_STAGES if not only or s in only]

    def _resolve(self, stage: str) -> tuple[type[Backend] | None, Any, str]:
        binding = self.profile.stages[stage]
        try:
            cls = backend_class(stage, binding.backend)
        except UserError as exc:
            return None, None, str(exc)
        missing = missing_requirements(cls)
        if missing:
            hint = f" (pip install 'churnctl[{cls.extra}]')" if cls.extra else ""
            return None, None, f"needs {', '.join(missing)}{hint}"
        return cls, cls.Options.model_validate(binding.options), ""

    def plan(self, only: list[str] = (), start: str | None = None, force: bool = False,
             ) -> list[StagePlan]:
        """What each stage would do and why, without running or importing anything heavy."""
        chosen = self.selected(list(only), start)
        forced_from = PIPELINE_STAGES.index(start) if start else len(PIPELINE_STAGES)
        plans: list[StagePlan] = []
        upstream: dict[str, ArtifactRef | None] = {}
        pending: set[str] = set()
        for index, stage in enumerate(PIPELINE_STAGES):
            backend = self.profile.stages[stage].backend
            cls, options, problem = self._resolve(stage)
            if cls is None:
                plans.append(StagePlan(stage, backend, "unavailable", problem))
                pending.add(stage)
                continue
            step = StagePlan(stage, backend, "run", "", cls=cls, options=options)
            plans.append(step)
            waiting = [s for s in STAGE_INPUTS[stage] if s in pending]
            if waiting:
                step.reason = f"after {', '.join(waiting)} (runs if its output changes)"
                pending.add(stage)
                if stage not in chosen:
                    step.status, step.reason = "skip", "not selected"
                continue
            inputs = {s: upstream[s] for s in STAGE_INPUTS[stage] if upstream.get(s) is not None}
            step.components = components(cls, options, inputs, self.workspace)
            step.key = value_sha256(step.components)
            existing, damaged = _usable(self.workspace, stage, step.key, self.verify)
            if stage not in chosen:
                upstream[stage] = existing or _latest_committed(self.workspace, stage)
                step.status, step.reason = "skip", "not selected"
                continue
            if existing and not force and index < forced_from:
                step.status, step.reason = "cached", "unchanged since last run"
                upstream[stage] = existing
            else:
                step.reason = ("forced" if existing else damaged
                               or explain(stage, self.workspace, step.components))
                pending.add(stage)
        for step in plans:
            missing_inputs = [s for s in STAGE_INPUTS[step.stage]
                              if any(p.stage == s and p.status == "skip" for p in plans)
                              and upstream.get(s) is None]
            if step.status in ("run", "cached") and missing_inputs:
                step.status = "unavailable"
                step.reason = f"needs output of {', '.join(missing_inputs)}; run it first"
        return plans

    def execute(self, only: list[str] = (), start: str | None = None, force: bool = False,
                progress: Any = None) -> dict[str, Any]:
        """Run the selected stages; return the run record (also saved in the workspace)."""
        tracing.configure_from(getattr(self.profile, "tracing", None))  # off unless configured
        with (workspace_lock(self.workspace, "churnctl run", log=self.log),
              tracing.span("churnctl run", {"churnctl.profile": self.profile.name}) as run_span):
            self.workspace.ensure()
            plans = self.plan(only, start, force)
            blocked = [p for p in plans if p.status == "unavailable"]
            if blocked:
                raise UserError("; ".join(f"{p.stage} ({p.backend}): {p.reason}" for p in blocked))
            orchestrator = self._orchestrator()
            if self.profile.tracking is not None:
                from churnctl.tracking import tracker_for

                tracker_for(self.profile.tracking)  # a missing extra is reported before any work
            started = datetime.now(UTC)
            record: dict[str, Any] = {
                "run_id": started.strftime("%Y%m%d-%H%M%S-") + value_sha256(time.time_ns())[:6],
                "profile": self.profile.name,
                "profile_source": self.profile.source,
                "started_at": started.isoformat(timespec="seconds"),
                "churnctl_version": __version__,
                "status": "running",
                "stages": [],
                "metrics": {},
                "parameters": {p.stage: p.options.model_dump(mode="json") for p in plans
                               if p.options},
            }
            outputs: dict[str, ArtifactRef] = {}
            interrupted = False
            try:
                if orchestrator is not None:
                    backend, options = orchestrator
                    record["orchestrator"] = backend.name
                    backend.execute(self, options, plans, record, outputs, only=list(only),
                                    start=start, force=force, progress=progress)
                else:
                    for step in plans:
                        if step.status == "skip":
                            ref = _latest_committed(self.workspace, step.stage)
                            if ref is not None:
                                outputs[step.stage] = ref
                            continue
                        with tracing.span(f"stage {step.stage}", {
                                "churnctl.stage": step.stage,
                                "churnctl.backend": step.backend}) as stage_span:
                            row = self._run_stage(step, outputs, force, start, progress,
                                                  record["stages"])
                            tracing.stage_done(stage_span, row)
                        record["metrics"].update(row.get("metrics", {}))
                record["status"] = "succeeded"
            except BaseException as exc:
                record["status"] = "failed"
                record["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                interrupted = not isinstance(exc, Exception)  # Ctrl-C: stop, do not start logging
                raise
            finally:
                finished = datetime.now(UTC)
                record["finished_at"] = finished.isoformat(timespec="seconds")
                record["seconds"] = round((finished - started).total_seconds(), 3)
                run_span.set_attributes({"churnctl.run_id": record["run_id"],
                                         "churnctl.status": record["status"],
                                         "churnctl.seconds": record["seconds"]})
                try:
                    if not interrupted:
                        self._track(record)
                finally:
                    write_json(self.workspace.runs / f"{record['run_id']}.json", record)
            return record

    def _orchestrator(self) -> tuple[Orchestrator, Any] | None:
        """The profile's orchestrator when it is an outside tool; None runs stages in-process."""
        binding = self.profile.orchestrator
        if binding.backend == "local":
            return None
        cls = backend_class("orchestrator", binding.backend)
        if not issubclass(cls, Orchestrator):
            return None  # a plain backend describes the in-process runner
        require_available(cls)
        return cls(), cls.Options.model_validate(binding.options)

    def _track(self, record: dict[str, Any]) -> None:
        """Hand the finished run to the profile's tracker; its failures never fail the run."""
        if self.profile.tracking is None:
            return
        from churnctl.tracking import track_run

        record["tracking"] = track_run(self.profile.tracking, self.workspace, record, self.log)

    def run_one(self, stage: str, inputs: dict[str, ArtifactRef], force: bool = False,
                progress: Any = None) -> dict[str, Any]:
        """Run (or reuse) one stage on explicit input artifacts; its row for the run record.

        Used where an outside orchestrator (DVC, Kubeflow) schedules single stages and hands
        over the upstream artifacts itself.
        """
        cls, options, problem = self._resolve(stage)
        if cls is None:
            raise UserError(f"{stage} ({self.profile.stages[stage].backend}): {problem}")
        missing = [s for s in STAGE_INPUTS[stage] if s not in inputs]
        if missing:
            raise UserError(f"{stage} needs the output of {', '.join(missing)}; run it first")
        with workspace_lock(self.workspace, "churnctl stage run", log=self.log):
            self.workspace.ensure()
            step = StagePlan(stage, self.profile.stages[stage].backend, "run", "", cls=cls,
                             options=options)
            return self._run_stage(step, dict(inputs), force, None, progress)

    def adopt(self, stage: str, artifact: ArtifactRef, inputs: dict[str, ArtifactRef],
              progress: Any = None) -> dict[str, Any]:
        """The row of a stage an orchestrator found up to date: publish it, do no stage work."""
        cls, options, problem = self._resolve(stage)
        if cls is None:
            raise UserError(f"{stage} ({self.profile.stages[stage].backend}): {problem}")
        step = StagePlan(stage, self.profile.stages[stage].backend, "cached", "", cls=cls,
                         options=options)
        row: dict[str, Any] = {"name": stage, "backend": step.backend, "key": artifact.key,
                               "inputs": {s: ref.content_hash for s, ref in sorted(inputs.items())},
                               "external": {}, "status": "cached"}
        return self._finish_stage(step, artifact, inputs, row, time.perf_counter(), progress)

    def _run_stage(self, step: StagePlan, outputs: dict[str, ArtifactRef], force: bool,
                   start: str | None, progress: Any,
                   rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Run (or reuse) one stage. Its row goes into `rows` before the work starts, so a stage
        that fails keeps its row (status failed) in the run record."""
        cls, stage = step.cls, step.stage
        assert cls is not None
        inputs = {s: outputs[s] for s in STAGE_INPUTS[stage] if s in outputs}
        parts = components(cls, step.options, inputs, self.workspace)
        key = value_sha256(parts)
        forced = force or (start is not None
                           and PIPELINE_STAGES.index(stage) >= PIPELINE_STAGES.index(start))
        artifact = None if forced else _usable(self.workspace, stage, key, self.verify)[0]
        row: dict[str, Any] = {"name": stage, "backend": step.backend, "key": key,
                               "inputs": parts["inputs"], "external": parts["external"],
                               "status": "running"}
        if rows is not None:
            rows.append(row)
        backend = cls()
        began = time.perf_counter()
        if progress is not None:
            progress(stage, step.backend, "cached" if artifact else "running")
        # Under the writer lock: what a killed run left, its artifact or its LATEST pointer
        # (a kill between the artifact's commit and LATEST leaves the stage cached next time).
        sweep_stale(self.workspace.artifacts / stage)
        if artifact is None:
            target = self.workspace.artifact_dir(stage, key)
            try:
                # A forced rerun swaps the new tree in: the old one stays until the new commits.
                with atomic_dir(target, replace=target.exists()) as tmp:
                    ctx = StageContext(stage, step.options, inputs, tmp, self.workspace, self.log)
                    result = backend.run(ctx)
                    files, sizes = tree_files(tmp)
                    write_json(tmp / MANIFEST, {
                        "stage": stage, "key": key, "components": parts, "files": files,
                        "sizes": sizes, "uri": result.uri,
                        "contents": declared_contents(tmp, result.contents(), files, stage),
                        "metrics": result.metrics, "summary": result.summary,
                    })
            except BaseException as exc:
                row.update(status="failed", seconds=round(time.perf_counter() - began, 3),
                           error=(str(exc).splitlines() or [type(exc).__name__])[0])
                if progress is not None:
                    progress(stage, step.backend, "failed")
                raise
            artifact = ArtifactRef.load(target)
            row["status"] = "ran"
        else:
            row["status"] = "cached"
        write_text(self.workspace.artifacts / stage / LATEST, key + "\n")
        outputs[stage] = artifact
        return self._finish_stage(step, artifact, inputs, row, began, progress)

    def _finish_stage(self, step: StagePlan, artifact: ArtifactRef,
                      inputs: dict[str, ArtifactRef], row: dict[str, Any], began: float,
                      progress: Any) -> dict[str, Any]:
        """Publish a committed artifact and complete its row (metrics, summary, paths)."""
        assert step.cls is not None
        manifest = json.loads((artifact.path / MANIFEST).read_text())
        ctx = StageContext(step.stage, step.options, inputs, artifact.path, self.workspace,
                           self.log, promote=self.promote, tracking=self.profile.tracking)
        published = step.cls().publish(ctx, artifact)
        path = artifact.path.resolve()
        root = self.workspace.root.resolve()
        row.update(
            seconds=round(time.perf_counter() - began, 3),
            artifact=str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
            outputs=artifact.files,
            metrics=manifest.get("metrics", {}),
            summary={**manifest.get("summary", {}), **published},
        )
        if progress is not None:
            progress(step.stage, step.backend, row["status"], row["seconds"])
        return row

