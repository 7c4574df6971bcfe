"""Ingest one customer table (CSV, Parquet or Excel): one row per customer and a churn column.

Writes `table.parquet` (typed: id, time, target as 0/1, features) and `table_profile.json`:
how the file was read, what each column was inferred to be, and what was left out and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator

from churnctl.atomic import write_json
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions
from churnctl.workspace import Workspace


def _as_text(value: Any) -> Any:
    """`--set ingest.positive=Yes` arrives as YAML's True, `=1` as 1: keep what was typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class TableIngestOptions(StrictOptions):
    path: Path
    target: str
    id: str | None = None
    time: str | None = None
    positive: str | None = None

    @field_validator("target", "id", "time", "positive", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _as_text(value)


class TableIngest(Backend):
    name = "table"
    stage = "ingest"
    description = "one customer table (CSV, Parquet, Excel): sniffed, types inferred, profiled"
    Options = TableIngestOptions
    extra = "pandas"
    modules = ("pandas", "pyarrow")

    def external_inputs(self, options: TableIngestOptions, workspace: Workspace) -> list[Path]:
        return [workspace.root / options.path]

    def run(self, ctx: StageContext) -> StageOutput:
        from churnctl.domain.table_infer import apply_plan, infer_plan
        from churnctl.domain.table_read import read_table, require_unique
        from churnctl.domain.table_target import spelling

        opts: TableIngestOptions = ctx.options
        path = ctx.workspace.root / opts.path
        raw = read_table(path)
        require_unique(raw, opts.target, opts.id, opts.time)
        plan = infer_plan(raw.frame, path, opts.target, opts.id, opts.time, opts.positive,
                          decimal_hint=raw.delimiter == ";")
        table, notices = apply_plan(plan, raw.frame, path, with_target=True)
        labelled = table[plan.target].notna()
        blank_target = int((~labelled).sum())
        table = table[labelled].reset_index(drop=True)
        table[plan.target] = table[plan.target].astype("int8")
        notices = raw.notices + notices
        if blank_target:
            notices.append(f"{path.name}: {blank_target} row(s) with a blank {plan.target} left "
                           "out of training")
        for column in plan.columns:
            if column.role == "dropped":
                notices.append(f"column {column.name}: left out ({column.reason})")
            elif column.role == "id" and opts.id is None:
                notices.append(f"column {column.name}: used as the id (unique per row); "
                               "pass --id to choose another")
        for note in notices:
            ctx.log(note)
        table.to_parquet(ctx.out_dir / "table.parquet", index=False)
        rate = round(float(table[plan.target].mean()), 6)
        profile = {
            # As given (relative to the workspace): a moved project yields the same artifact.
            "source": {**raw.describe(), "path": str(opts.path)},
            "rows": len(raw.frame),
            "rows_used": len(table),
            "rows_blank_target": blank_target,
            "columns": [{"name": c.name, "kind": c.kind, "role": c.role, "reason": c.reason,
                         "missing": c.missing, "distinct": c.distinct} for c in plan.columns],
            "target": {"column": plan.target, "rate": rate,
                       "positive": spelling(raw.frame[plan.target], plan.positive),
                       "negative": spelling(raw.frame[plan.target], plan.negative)},
            "id": plan.id, "time": plan.time,
            "features": {"numeric": [c.name for c in plan.features if c.model_kind == "numeric"],
                         "categorical": [c.name for c in plan.features
                                         if c.model_kind == "categorical"]},
            "notices": notices,
            "plan": plan.to_dict(),
        }
        write_json(ctx.out_dir / "table_profile.json", profile)
        return StageOutput(
            tables={"customers": "table.parquet"},
            reports={"profile": "table_profile.json"},
            meta={"table_profile": profile},
            metrics={"table_rows": len(table), "target_rate": rate},
            summary={"features": len(plan.features),
                     "dropped": [c.name for c in plan.columns if c.role == "dropped"]},
        )
