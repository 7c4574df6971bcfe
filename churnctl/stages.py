"""Stages, the backend base class, and the artifact references stages pass to each other.

Stages exchange references (artifacts.py: a directory tree, its content hashes and what it
declares it holds), never data frames:
that is what lets a pandas stage feed a Spark one, lets runs resume and the cache work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from churnctl.artifacts import MANIFEST, ArtifactRef, Contents, Table
from churnctl.workspace import Workspace

__all__ = ["ALL_STAGES", "MANIFEST", "PIPELINE_STAGES", "STAGE_INPUTS", "ArtifactRef", "Backend",
           "Orchestrator", "StageContext", "StageOutput", "StrictOptions", "Table", "Tracker"]

# The stages `churnctl run` executes, in order, and what each one reads.
PIPELINE_STAGES: tuple[str, ...] = ("ingest", "validate", "features", "train")
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "validate": ("ingest",),
    "features": ("ingest", "validate"),
    "train": ("features",),
}
# Stages that are commands of their own (long-running or acting on the outside world).
SERVICE_STAGES: tuple[str, ...] = ("serve", "deploy")
ALL_STAGES: tuple[str, ...] = PIPELINE_STAGES + SERVICE_STAGES


class StrictOptions(BaseModel):
    """Base for backend options: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StageContext:
    """What a backend gets to do its work: options, input artifacts and a private output dir."""

    stage: str
    options: Any
    inputs: dict[str, ArtifactRef]
    out_dir: Path
    workspace: Workspace
    log: Any = print  # a callable taking one string: the runner routes it to the console
    promote: bool = False  # `run --promote`: an explicit override of the promotion gate
    tracking: Any = None  # the profile's tracking binding: where production is recorded (v2+)


@dataclass
class StageOutput:
    """What a backend reports besides its files: metrics and a summary for the run record, and
    what its output holds (named tables, models, reports, small metadata values), which the
    next stages ask for by name (`ArtifactRef.table("train")`, `.meta("feature_schema")`)."""

    metrics: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Table | str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    uri: str | None = None  # set when the data lives outside the artifact directory

    def contents(self) -> Contents:
        return Contents(self.tables, self.models, self.reports, self.meta, self.uri)


class Backend:
    """Base class of every backend. Subclasses keep heavy imports inside their methods.

    Class attributes describe the backend without importing its heavy library, so `plan`,
    `backends` and `doctor` stay fast.
    """

    name: ClassVar[str]
    stage: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[StrictOptions]] = StrictOptions
    extra: ClassVar[str | None] = None  # the pip extra that installs what it needs
    modules: ClassVar[tuple[str, ...]] = ()  # importable modules it needs
    binaries: ClassVar[tuple[str, ...]] = ()  # executables it needs on PATH
    # Modules of the backend's code that it runs without importing them (a script started in
    # a subprocess). Everything it imports is found from the import graph (code_version.py).
    code_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def requirement_problems(cls) -> list[str]:
        """What this machine lacks beyond `modules` and `binaries` (a Java too old for Spark),
        each a phrase that reads after "needs"; checked by plan and doctor, never importing
        the backend's library."""
        return []

    @classmethod
    def services(cls, options: dict[str, Any]) -> list[tuple[str, str]]:
        """(service, where) pairs of what the backend reaches with these (profile) options and
        someone must run: `profile diff` lists them for the target. Never a credential."""
        return []

    def external_inputs(self, options: Any, workspace: Workspace) -> list[Path]:
        """Files outside the workspace whose content feeds this stage (part of its cache key)."""
        return []

    def input_digests(self, options: Any, workspace: Workspace) -> dict[str, str]:
        """Named content digests of workspace state the stage reads that is neither an input
        artifact nor a file taken whole (external_inputs): the part of a GX project a user
        edits, say, less what the stage regenerates itself. Part of its cache key (and of
        DVC's params), named by `plan` like an input file when it changes."""
        return {}

    def run(self, ctx: StageContext) -> StageOutput:
        raise NotImplementedError

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        """Idempotent side effect after the artifact is committed, run even when cached.

        Registering a model is such a step: a run killed between commit and publish
        completes it on the next run instead of losing it.
        """
        return {}


class Orchestrator(Backend):
    """Runs the pipeline stages through an outside tool (DVC, ...) instead of in-process.

    `execute` fills the run record's stage rows and `outputs` (stage -> committed artifact)
    the way the in-process loop of the runner does; the runner keeps the record's frame
    (id, timing, status, tracking) so every orchestrator produces the same record shape.
    """

    stage = "orchestrator"

    def execute(self, runner: Any, options: Any, plans: list[Any], record: dict[str, Any],
                outputs: dict[str, ArtifactRef], *, only: list[str], start: str | None,
                force: bool, progress: Any) -> None:
        raise NotImplementedError


class Tracker(Backend):
    """Logs a finished run to an experiment tracker: start, one call per stage, finish.

    The runner calls it after the stages ran (also for a failed run), so a tracker never
    slows or breaks the pipeline itself; `finish` returns what to keep in the run record.
    """

    stage = "tracking"

    def store(self, options: Any, workspace: Workspace) -> str:
        """Where runs go (a URI), resolved without importing the tracker's library."""
        return ""

    def start(self, options: Any, workspace: Workspace, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def stage_done(self, row: dict[str, Any], artifact: ArtifactRef | None) -> None:
        raise NotImplementedError

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def pull_production(self, options: Any, workspace: Workspace, log: Any) -> None:
        """Refresh the local registry's production from the tracker's pointer of record, so
        the promotion gate compares against the real production (no-op by default)."""

    def abort(self) -> None:
        """Best effort after a failure part-way (close the tracker's run as failed)."""
