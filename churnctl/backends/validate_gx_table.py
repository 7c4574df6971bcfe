"""Validate an ingested customer table with a Great Expectations suite; HTML Data Docs.

The customer-table counterpart of `validate.gx` (what `--data` selects when the profile
validates with GX, as v3 does): the suite comes from the schema ingest inferred
(quality_gx/table_suite.py), runs as the `churnctl_customers` checkpoint of the workspace's
GX project, and gives the verdicts of `validate.table` in its report and gate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from churnctl.backends.validate_gx import DOCS, failure_line
from churnctl.backends.validate_table import TableValidatorOptions
from churnctl.backends.validation_gate import apply_gate
from churnctl.errors import GateFailed
from churnctl.stages import ArtifactRef, Backend, StageContext, StageOutput
from churnctl.workspace import Workspace


class GxTableValidatorOptions(TableValidatorOptions):
    data_docs: bool = Field(True, description="build HTML Data Docs into the artifact")
    severity: dict[str, Literal["critical", "warning"]] = Field(
        default_factory=dict,
        description="kind -> critical (stops the run) or warning; kinds: column_exists, type, "
        "allowed_values, range, unique, target_values, class_rows, time_periods, "
        "mostly_filled, distinct_rows")
    keep_results: int = Field(
        10, ge=1, description="runs whose validation results stay in "
        "gx/uncommitted/validations per suite; older ones are deleted")


class GxTableValidator(Backend):
    name = "gx-table"
    stage = "validate"
    description = "customer table: Great Expectations suite from the inferred schema, Data Docs"
    Options = GxTableValidatorOptions
    extra = "gx"
    modules = ("great_expectations", "pandas")

    def input_digests(self, options: Any, workspace: Workspace) -> dict[str, str]:
        """What a user wrote into gx/ (see validate.gx)."""
        from churnctl.quality_gx.inputs import project_digests

        return project_digests(workspace.root)

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain.quality import CheckResult
        from churnctl.errors import UserError
        from churnctl.quality_gx.gate import run_checkpoints
        from churnctl.quality_gx.table_suite import TABLE, TABLE_SEVERITY, customer_table_specs

        opts: GxTableValidatorOptions = ctx.options
        unknown = sorted(set(opts.severity) - set(TABLE_SEVERITY))
        if unknown:
            raise UserError(f"validate.severity: unknown kind(s) {', '.join(unknown)}; "
                            f"kinds: {', '.join(TABLE_SEVERITY)}")
        ingest = ctx.inputs["ingest"]
        profile = ingest.meta("table_profile")
        table = pd.read_parquet(ingest.table("customers"))
        suites = customer_table_specs(table, profile, min_class_rows=opts.min_class_rows,
                                      max_blank_share=opts.max_blank_share)
        docs_dir = ctx.out_dir / DOCS if opts.data_docs else None
        results, index = run_checkpoints(
            ctx.workspace.root, {TABLE: table}, suites, {**TABLE_SEVERITY, **opts.severity},
            {}, docs_dir, opts.keep_results)
        # Rows with a blank target are not in the table: ingest counted them.
        blank = int(profile.get("rows_blank_target", 0))
        results.append(CheckResult(
            "labelled", TABLE, profile["target"]["column"], blank == 0, blank,
            f"{blank} row(s) with a blank target were left out" if blank else "",
            severity="warning"))
        source = {TABLE: profile["source"]["path"]}
        try:
            output = apply_gate(ctx, results, {TABLE: len(table)},
                                source=lambda _check: source[TABLE],
                                fail_on_warning=opts.fail_on_warning)
        except GateFailed:
            raise GateFailed(failure_line(ctx, results, source, index,
                                          opts.fail_on_warning)) from None
        if index is not None:
            output.reports["data_docs"] = f"{DOCS}/index.html"
        return output

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        index = artifact.path / DOCS / "index.html"
        return {"data_docs": str(index)} if index.is_file() else {}
