"""Validate an ingested customer table with a Great Expectations suite; HTML Data Docs.

The customer-table counterpart of `validate.gx` (what `--data` selects when the profile
validates with GX, as v3 does): the suite comes from the schema ingest inferred
(quality_gx/table_suite.py), runs as the `churnctl_customers` checkpoint of the workspace's
GX project, and gives the verdicts of `validate.table` in its report and gate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from churnctl.backends.validate_gx import DOCS, GxOptions, GxValidator, gate
from churnctl.backends.validate_table import TableValidatorOptions
from churnctl.quality_gx.table_suite import TABLE_SEVERITY
from churnctl.stages import StageContext, StageOutput


class GxTableValidatorOptions(GxOptions, TableValidatorOptions):
    SEVERITY_KINDS = tuple(TABLE_SEVERITY)
    severity: dict[str, Literal["critical", "warning"]] = Field(
        default_factory=dict,
        description="kind -> critical (stops the run) or warning; kinds: "
        + ", ".join(TABLE_SEVERITY))


class GxTableValidator(GxValidator):
    """validate.gx's project, digests and Data Docs; the suite from the inferred schema."""

    name = "gx-table"
    stage = "validate"
    description = "customer table: Great Expectations suite from the inferred schema, Data Docs"
    Options = GxTableValidatorOptions

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain.quality import CheckResult
        from churnctl.quality_gx.gate import run_checkpoints
        from churnctl.quality_gx.table_suite import TABLE, customer_table_specs

        opts: GxTableValidatorOptions = ctx.options
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
        return gate(ctx, results, {TABLE: len(table)}, source, index, opts.fail_on_warning)
