"""Run churnctl's GX checkpoints on in-memory tables; results in the pandas gate's terms.

Each result becomes a `CheckResult` (check = the expectation's kind, table, column, failing
rows), so `validation_gate.apply_gate`, the model report and MLflow read a GX run exactly like
a pandas one. Critical expectations are gate errors, the rest warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from churnctl.domain.quality import CheckResult
from churnctl.quality_gx.contract import MARK, UNKNOWN_USER_COLUMN, ExpectationSpec
from churnctl.quality_gx.docs import make_offline
from churnctl.quality_gx.project import docs_site, open_project, sync_project


def event_parameters(users: pd.DataFrame, events: pd.DataFrame, *, earliest: pd.Timestamp,
                     as_of: pd.Timestamp | None, max_future_days: int) -> dict[str, Any]:
    """The suite parameters of a run: the date window, as the pandas gate computes it (by
    day, "today" from `as_of` or the data)."""
    from churnctl.domain.quality import reference_date

    today = reference_date(events, as_of, earliest)
    latest = (today + pd.Timedelta(days=max_future_days + 1)) if today is not None else None
    return {"earliest_date": earliest.to_pydatetime(),
            "latest_date": latest.to_pydatetime() if latest is not None else None}


def mark_unknown_users(users: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The events batch with UNKNOWN_USER_COLUMN: user_id where the user is unknown."""
    known = events["user_id"].isin(users["user_id"])
    unknown = events["user_id"].where(~known)
    if pd.api.types.is_integer_dtype(events["user_id"]):
        unknown = unknown.astype("Int64")  # ids stay ids (999999, not 999999.0)
    return events.assign(**{UNKNOWN_USER_COLUMN: unknown})


def run_checkpoints(root: Path, frames: dict[str, pd.DataFrame],
                    suites: dict[str, list[ExpectationSpec]], severity: dict[str, str],
                    parameters: dict[str, Any], docs_dir: Path | None,
                    ) -> tuple[list[CheckResult], Path | None]:
    """Regenerate the project's churnctl part, run one checkpoint per table, build the docs."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    context = open_project(root)
    checkpoints = sync_project(context, suites, severity)
    # The checkpoints' docs actions build nothing (no site, in memory); the docs are built
    # once for all tables below, from this run's results only.
    context.variables.data_docs_sites = {}
    results: list[CheckResult] = []
    built: list[Any] = []
    for table, checkpoint in checkpoints.items():
        outcome = checkpoint.run(batch_parameters={"dataframe": frames[table]},
                                 expectation_parameters=parameters)
        for identifier, validation in outcome.run_results.items():
            results += [_check_result(table, item) for item in validation.results]
            built += [identifier, ExpectationSuiteIdentifier(validation.suite_name)]
    if docs_dir is None:
        return results, None
    docs_site(context, docs_dir)
    context.build_data_docs(site_names=["churnctl"], resource_identifiers=built)
    make_offline(docs_dir)
    return results, docs_dir / "index.html"


def _check_result(table: str, item: Any) -> CheckResult:
    config = item.expectation_config
    mark = (config.meta or {}).get(MARK)
    kwargs = config.kwargs
    column = (mark or {}).get("column") or kwargs.get("column") or \
        "+".join(kwargs.get("column_list", [])) or "*"
    severity = "error" if str(getattr(config.severity, "value", config.severity)) == "critical" \
        else "warning"
    result = item.result or {}
    failing = int(result.get("unexpected_count") or 0)
    detail = ""
    raised = (item.exception_info or {}).get("raised_exception")
    if raised:
        message = str((item.exception_info or {}).get("exception_message", "")).splitlines()
        detail = f"{config.type} could not run: {message[0] if message else 'error'}"
    elif not item.success:
        examples = result.get("partial_unexpected_list") or []
        shown = ", ".join(sorted({str(v) for v in examples[:3]}))
        detail = f"{config.type} failed" + (f", e.g. {shown}" if shown else "")
        if "observed_value" in result:
            detail += f" (observed {result['observed_value']})"
    return CheckResult(check=(mark or {}).get("kind", config.type),
                       table=(mark or {}).get("table", table), column=column,
                       passed=bool(item.success), failing_rows=failing, detail=detail,
                       severity=severity)
