"""Run churnctl's GX checkpoints on in-memory tables; results in the pandas gate's terms.

Each result becomes a `CheckResult` (check = the expectation's kind, table, column, failing
rows), so `validation_gate.apply_gate`, the model report and MLflow read a GX run exactly like
a pandas one. Critical expectations are gate errors, the rest warnings.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pandas as pd

from churnctl.domain.quality import CheckResult
from churnctl.quality_gx.contract import (
    MARK,
    SIGNUP_COLUMN,
    UNKNOWN_USER_COLUMN,
    ExpectationSpec,
)
from churnctl.quality_gx.docs import make_offline
from churnctl.quality_gx.project import (
    PANDAS,
    Engine,
    docs_site,
    open_project,
    prune_validation_results,
    sync_project,
)


def event_parameters(users: pd.DataFrame, events: pd.DataFrame, *, earliest: pd.Timestamp,
                     as_of: pd.Timestamp | None, max_future_days: int) -> dict[str, Any]:
    """The suite parameters of a run: the date window, as the pandas gate computes it (by
    day, "today" from `as_of` or the data)."""
    from churnctl.domain.quality import reference_date

    today = reference_date(events, as_of, earliest)
    latest = (today + pd.Timedelta(days=max_future_days + 1)) if today is not None else None
    return {"earliest_date": earliest.to_pydatetime(),
            "latest_date": latest.to_pydatetime() if latest is not None else None}


def events_batch(users: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The events batch with what GX cannot join itself: UNKNOWN_USER_COLUMN (user_id where
    the user is unknown) and SIGNUP_COLUMN (the user's signup date rounded up to its day)."""
    known = events["user_id"].isin(users["user_id"])
    unknown = events["user_id"].where(~known)
    if pd.api.types.is_integer_dtype(events["user_id"]):
        unknown = unknown.astype("Int64")  # ids stay ids (999999, not 999999.0)
    signup = pd.Series(pd.NaT, index=events.index, dtype="datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(users["signup_date"]) and \
            pd.api.types.is_datetime64_any_dtype(events["event_time"]):
        # A day compared with a day: event_time.normalize() < signup_date <=> event_time <
        # ceil(signup_date); a mistyped signup_date fails its type expectation instead.
        first = users.drop_duplicates("user_id").set_index("user_id")["signup_date"]
        signup = events["user_id"].map(first.dt.ceil("D")).astype(events["event_time"].dtype)
    return events.assign(**{UNKNOWN_USER_COLUMN: unknown, SIGNUP_COLUMN: signup})


def copy_on_write() -> contextlib.AbstractContextManager[Any]:
    """pandas' copy-on-write while GX validates. Its column map metrics drop null rows first
    (`df[df[column].notnull()]`), and when nothing is null pandas 2 answers with a deep copy
    of the whole batch, once per expectation: a third of the events checkpoint at 20,000
    users. With copy-on-write that copy is lazy (pandas 3 always works this way)."""
    if int(pd.__version__.split(".")[0]) >= 3:
        return contextlib.nullcontext()
    return pd.option_context("mode.copy_on_write", True)


def text_as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """The batch with its text (object) columns in pandas' string dtype. For an object column
    GX checks the type of every value in Python (a third of the events checkpoint at 20,000
    users); for a string column the dtype answers at once. The values are the same: a text
    column read from Parquet holds only text and blanks. (A categorical would be faster
    still, but GX 1.x cannot match a CategoricalDtype in a type list.)"""
    text = [name for name in frame.columns if frame[name].dtype == object]
    return frame.astype(dict.fromkeys(text, "string")) if text else frame


def run_checkpoints(root: Path, frames: dict[str, Any],
                    suites: dict[str, list[ExpectationSpec]], severity: dict[str, str],
                    parameters: dict[str, Any], docs_dir: Path | None, keep_results: int,
                    engine: Engine = PANDAS) -> tuple[list[CheckResult], Path | None]:
    """Regenerate the project's churnctl part, run one checkpoint per table, build the docs,
    then prune the validated suites' stored results to the newest `keep_results` runs.
    `frames` are pandas DataFrames, or Spark DataFrames with `engine` SPARK."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    context = open_project(root)
    checkpoints = sync_project(context, suites, severity, engine)
    # The checkpoints' docs actions build nothing (no site, in memory); the docs are built
    # once for all tables below, from this run's results only.
    context.variables.data_docs_sites = {}
    results: list[CheckResult] = []
    built: list[Any] = []
    validated: set[str] = set()
    for table, checkpoint in checkpoints.items():
        if engine is PANDAS:
            with copy_on_write():
                batch = text_as_strings(frames[table])
                outcome = checkpoint.run(batch_parameters={"dataframe": batch},
                                         expectation_parameters=parameters)
        else:
            outcome = checkpoint.run(batch_parameters={"dataframe": frames[table]},
                                     expectation_parameters=parameters)
        for identifier, validation in outcome.run_results.items():
            results += [_check_result(table, item) for item in validation.results]
            built += [identifier, ExpectationSuiteIdentifier(validation.suite_name)]
            validated.add(validation.suite_name)
    if docs_dir is not None:
        docs_site(context, docs_dir)
        context.build_data_docs(site_names=["churnctl"], resource_identifiers=built)
        make_offline(docs_dir)
    prune_validation_results(root, validated, keep_results)
    return results, docs_dir / "index.html" if docs_dir is not None else None


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
