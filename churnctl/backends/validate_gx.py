"""Validate users + events with a Great Expectations 1.x suite and checkpoint; HTML Data Docs.

The suite is generated from the data contract (quality_gx/contract.py) into the workspace's
file-mode GX project (`gx/`), a checkpoint per table runs in this stage, and Data Docs are
built into the stage's artifact (`data_docs/index.html`). The gate itself, its report and the
output contract (`reports.validation`) are the pandas validator's (validation_gate.py), so
features, the model report and MLflow read either backend the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from churnctl.backends.validate_pandas import PandasValidatorOptions
from churnctl.backends.validation_gate import apply_gate
from churnctl.errors import GateFailed
from churnctl.quality_gx.contract import DEFAULT_SEVERITY
from churnctl.stages import ArtifactRef, Backend, StageContext, StageOutput
from churnctl.workspace import Workspace

DOCS = "data_docs"


class GxOptions(BaseModel):
    """What every GX-backed validator takes; `severity` keys are checked against the suite's
    kinds when the profile loads, so `profile validate` and `plan` name a mistyped kind."""

    SEVERITY_KINDS: ClassVar[tuple[str, ...]] = ()
    data_docs: bool = Field(True, description="build HTML Data Docs into the artifact")
    keep_results: int = Field(
        10, ge=1, description="runs whose validation results stay in "
        "gx/uncommitted/validations per suite; older ones are deleted")

    @field_validator("severity", check_fields=False)
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(cls.SEVERITY_KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; "
                             f"kinds: {', '.join(cls.SEVERITY_KINDS)}")
        return value


class GxValidatorOptions(GxOptions, PandasValidatorOptions):
    SEVERITY_KINDS = tuple(DEFAULT_SEVERITY)
    severity: dict[str, Literal["critical", "warning"]] = Field(
        default_factory=dict,
        description="kind -> critical (stops the run) or warning, e.g. {null_fraction: "
        "critical}; kinds: " + ", ".join(DEFAULT_SEVERITY))
    min_rows: int = Field(1, ge=0, description="fewest rows each table may have")
    max_rows: int | None = Field(None, ge=1, description="most rows each table may have")


class GxValidator(Backend):
    name = "gx"
    stage = "validate"
    description = "Great Expectations 1.x suite from the data contract, checkpoint, Data Docs"
    Options = GxValidatorOptions
    extra = "gx"
    modules = ("great_expectations", "pandas")

    def input_digests(self, options: Any, workspace: Workspace) -> dict[str, str]:
        """What a user wrote into the workspace's gx/ (their expectations, their validation
        definitions in churnctl's checkpoints): editing it makes the next run validate anew."""
        from churnctl.quality_gx.inputs import project_digests

        return project_digests(workspace.root)

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.quality_gx.contract import event_data_specs
        from churnctl.quality_gx.gate import event_parameters, events_batch, run_checkpoints

        opts: GxValidatorOptions = ctx.options
        ingest = ctx.inputs["ingest"]
        frames = {"users": pd.read_parquet(ingest.table("users")),
                  "events": pd.read_parquet(ingest.table("events"))}
        suites = event_data_specs({t: list(f.columns) for t, f in frames.items()},
                                  min_rows=opts.min_rows, max_rows=opts.max_rows)
        parameters = event_parameters(
            frames["users"], frames["events"], earliest=pd.Timestamp(opts.earliest_date),
            as_of=pd.Timestamp(opts.as_of) if opts.as_of else None,
            max_future_days=opts.max_future_days)
        docs_dir = ctx.out_dir / DOCS if opts.data_docs else None
        batches = {**frames, "events": events_batch(frames["users"], frames["events"])}
        results, index = run_checkpoints(ctx.workspace.root, batches, suites, opts.severity,
                                         parameters, docs_dir, opts.keep_results)
        source = {t: ingest.meta("sources", {}).get(t, f"{t} table") for t in frames}
        return gate(ctx, results, {t: len(f) for t, f in frames.items()}, source, index,
                    opts.fail_on_warning)

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        index = artifact.path / DOCS / "index.html"
        return {"data_docs": str(index)} if index.is_file() else {}


def gate(ctx: StageContext, results: list[Any], rows: dict[str, int], source: dict[str, str],
         index: Path | None, fail_on_warning: bool) -> StageOutput:
    """The pandas validator's gate over GX's results, with the Data Docs in the report and,
    when it fails, in the one line that says so."""
    where: Callable[[Any], str] = lambda check: source.get(check.table, check.table)  # noqa: E731
    try:
        output = apply_gate(ctx, results, rows, source=where, fail_on_warning=fail_on_warning)
    except GateFailed:
        raise GateFailed(failure_line(ctx, results, source, index, fail_on_warning)) from None
    if index is not None:
        output.reports["data_docs"] = f"{DOCS}/index.html"
    return output


def failure_line(ctx: StageContext, results: list[Any], source: dict[str, str],
                 index: Path | None, fail_on_warning: bool) -> str:
    """One line: the first failed expectation in full, the others by table.column: kind, and
    where to read them all. The docs are copied out of the uncommitted artifact first."""
    failed = [r for r in results if not r.passed and (r.severity == "error" or fail_on_warning)]
    first = failed[0]
    counted = f" [{first.failing_rows} row(s)]" if first.failing_rows else ""
    others = sorted({f"{r.table}.{r.column}: {r.check}" + (
        f" (e.g. {r.detail.partition('e.g. ')[2]})" if "e.g. " in r.detail else "")
        for r in failed[1:]})
    more = f"; also failed: {', '.join(others)}" if others else ""
    where = ""
    if index is not None:
        kept = keep_failed_docs(index.parent, ctx.workspace.reports / DOCS)
        where = f"; Data Docs: {kept / 'index.html'}"
    return (f"validation failed: {source.get(first.table, first.table)}: column "
            f"{first.column}: {first.check}: {first.detail}{counted}{more}{where}; "
            f"fix the data, report: {ctx.workspace.reports / 'validation.json'}")


def keep_failed_docs(site: Path, target: Path) -> Path:
    """Copy a failed run's Data Docs to reports/data_docs whole (temp copy, then rename)."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".data_docs-", suffix=".tmp", dir=target.parent))
    shutil.copytree(site, staging / "site")
    old = target.with_name(f".{target.name}-old.tmp")
    if target.exists():
        target.rename(old)
    (staging / "site").rename(target)
    shutil.rmtree(old, ignore_errors=True)
    staging.rmdir()
    return target
