"""The file-mode GX project in the workspace (`gx/`): checked, then regenerated idempotently.

churnctl owns what is named `churnctl_*` (its suites, validation definitions and checkpoints)
and its data sources: `churnctl` (pandas, validate.gx) and `churnctl_spark` (Spark,
validate.gx-spark). Both engines validate with the same suites; each has its own validation
definitions and checkpoints (`churnctl_users`, `churnctl_spark_users`), since a validation
definition names the data source its batches come from. It rewrites a file only when its
content would change, keeps expectations a user added to a churnctl suite, keeps validation
definitions a user added to a churnctl checkpoint, and never touches anything else in `gx/`.

Every JSON file under `gx/` is read and checked before anything is written, so a broken file
(a user's edit gone wrong) stops the run with one line naming it and leaves `gx/` as it was.
Imports GX: call it from a backend's `run` only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnctl.errors import DataError
from churnctl.quality_gx.contract import MARK, SUITE_PREFIX, ExpectationSpec, suite_name

PROJECT_DIR = "gx"
DATA_SOURCE = "churnctl"
BATCH = "whole_table"


@dataclass(frozen=True)
class Engine:
    """Where a checkpoint's batches come from: GX's pandas or Spark dataframe data source."""

    kind: str  # "pandas" or "spark": which add_<kind> creates the data source
    data_source: str
    prefix: str  # of its validation definitions and checkpoints

    def run_name(self, table: str) -> str:
        """The validation definition's and the checkpoint's name for `table`."""
        return f"{self.prefix}{table}"


PANDAS = Engine("pandas", DATA_SOURCE, SUITE_PREFIX)
SPARK = Engine("spark", "churnctl_spark", f"{SUITE_PREFIX}spark_")
DOCS_ACTION = "update_data_docs"
# BASIC has what the gate reports (unexpected_count, a few unexpected values, observed
# values); SUMMARY adds value counts and row indexes per expectation: a third of the
# checkpoint's time on the default events table, read by nobody.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}
_CHECKED_FOLDERS = ("expectations", "validation_definitions", "checkpoints")


def quiet_environment() -> None:
    """No analytics calls and no progress bars, before GX is imported."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("TQDM_DISABLE", "1")


def check_project_files(gx_dir: Path) -> None:
    """Raise DataError naming the first unreadable file or unknown expectation under gx/."""
    from great_expectations.expectations.registry import _registered_expectations

    for folder in _CHECKED_FOLDERS:
        for path in sorted((gx_dir / folder).rglob("*.json")) if (gx_dir / folder).is_dir() \
                else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                where = (f" at line {exc.lineno} column {exc.colno}"
                         if isinstance(exc, json.JSONDecodeError) else "")
                raise DataError(f"{path}: not valid JSON{where} ({_reason(exc)}); fix the file "
                                "or delete it to have churnctl regenerate its own") from None
            if folder != "expectations":
                continue
            expectations = data.get("expectations") if isinstance(data, dict) else None
            if not isinstance(expectations, list):
                raise DataError(f"{path}: not an expectation suite (no 'expectations' list); "
                                "fix the file or delete it")
            for number, item in enumerate(expectations, 1):
                kind = item.get("type") if isinstance(item, dict) else None
                if kind not in _registered_expectations:
                    raise DataError(
                        f"{path}: expectation {number} has unknown type {kind!r}; use one of "
                        "Great Expectations' expectation types (e.g. "
                        "expect_column_values_to_not_be_null) or remove it")


def _reason(exc: Exception) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"


def open_project(root: Path) -> Any:
    """The workspace's file-mode context, created on first use, progress bars off."""
    quiet_environment()
    gx_dir = root / PROJECT_DIR
    if gx_dir.exists():
        check_project_files(gx_dir)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(root))
    # In memory only: the project's own config stays as the team wrote it.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _expectation(spec: ExpectationSpec, severity: str) -> Any:
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    meta = {MARK: {"kind": spec.kind, "table": spec.table, "column": spec.column}}
    return ExpectationConfiguration(type=spec.type, kwargs=dict(spec.kwargs), meta=meta,
                                    severity=severity).to_domain_obj()


def _fingerprint(expectation: Any) -> str:
    config = expectation.configuration.to_json_dict()
    config.pop("id", None)
    return json.dumps(config, sort_keys=True, default=str)


def _is_ours(expectation: Any) -> bool:
    return MARK in (expectation.meta or {})


def _not_found() -> tuple[type[Exception], ...]:
    from great_expectations.exceptions import DataContextError

    return (DataContextError, ValueError, LookupError)


def sync_suite(context: Any, table: str, specs: list[ExpectationSpec],
               severity: dict[str, str]) -> Any:
    """churnctl's suite for `table`: its generated expectations plus any a user added."""
    import great_expectations as gx

    not_found = _not_found()
    name = suite_name(table)
    wanted = [_expectation(spec, spec.severity(severity)) for spec in specs]
    try:
        existing = context.suites.get(name)
    except not_found:
        existing = None
    if existing is not None:
        ours = [e for e in existing.expectations if _is_ours(e)]
        if [_fingerprint(e) for e in ours] == [_fingerprint(e) for e in wanted]:
            return existing  # unchanged: no write, the file stays byte-identical
        theirs = [e for e in existing.expectations if not _is_ours(e)]
        suite = gx.ExpectationSuite(name=name, expectations=[*wanted, *theirs],
                                    meta=existing.meta, id=existing.id)
    else:
        suite = gx.ExpectationSuite(name=name, expectations=wanted,
                                    meta={"notes": "generated by churnctl from its data "
                                          "contract; expectations you add are kept"})
    return context.suites.add_or_update(suite)


def _batch_definition(context: Any, table: str, engine: Engine) -> Any:
    try:
        source = context.data_sources.get(engine.data_source)
    except (KeyError, ValueError, LookupError):
        add = getattr(context.data_sources, f"add_{engine.kind}")
        source = add(name=engine.data_source)
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(name=table)
    try:
        return asset.get_batch_definition(BATCH)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH)


def sync_checkpoint(context: Any, table: str, suite: Any, engine: Engine = PANDAS) -> Any:
    """The validation definition and the checkpoint that runs churnctl's suite on `table`."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    not_found = _not_found()
    name = engine.run_name(table)
    batch = _batch_definition(context, table, engine)
    try:
        definition = context.validation_definitions.get(name)
        current = (definition.suite.name, definition.data.name, definition.data.data_asset.name,
                   definition.data.data_asset.datasource.name)
    except not_found:  # missing, or pointing at something that is gone
        definition, current = None, None
    if current != (suite.name, BATCH, table, engine.data_source):
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite))
    try:
        checkpoint = context.checkpoints.get(name)
    except not_found:
        checkpoint = None
    theirs = [d for d in (checkpoint.validation_definitions if checkpoint else [])
              if d.name != name]
    names = [name, *(d.name for d in theirs)]
    if checkpoint is not None and [d.name for d in checkpoint.validation_definitions] == names \
            and any(a.name == DOCS_ACTION for a in checkpoint.actions) \
            and checkpoint.result_format == RESULT_FORMAT:
        return checkpoint
    actions = [a for a in (checkpoint.actions if checkpoint else []) if a.name != DOCS_ACTION]
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name=name, validation_definitions=[definition, *theirs],
        actions=[UpdateDataDocsAction(name=DOCS_ACTION), *actions],
        result_format=RESULT_FORMAT))


def sync_project(context: Any, suites: dict[str, list[ExpectationSpec]],
                 severity: dict[str, str], engine: Engine = PANDAS) -> dict[str, Any]:
    """Regenerate churnctl's part of the project; returns table -> checkpoint."""
    return {table: sync_checkpoint(context, table, sync_suite(context, table, specs, severity),
                                   engine)
            for table, specs in suites.items()}


def docs_site(context: Any, target: Path) -> None:
    """Point Data Docs (in memory, never saved) at `target`: the stage's artifact."""
    context.variables.data_docs_sites = {"churnctl": {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(target)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }}


def prune_validation_results(root: Path, suites: set[str], keep: int) -> int:
    """Keep the newest `keep` runs' results of each of `suites` in gx/uncommitted/validations
    (GX never deletes one, so a busy workspace grows by a few MB a day); returns how many
    runs' results were deleted. A run's results sit in `<suite>/<run name>/<run time>/`,
    and GX's run times (20261201T120955.914330Z) sort as they happened."""
    import shutil

    base = root / PROJECT_DIR / "uncommitted" / "validations"
    removed = 0
    for suite in sorted(suites):
        folder = base / suite
        runs = {path.parent for path in folder.rglob("*.json")} if folder.is_dir() else set()
        for run in sorted(runs, key=lambda p: (p.name, str(p)), reverse=True)[keep:]:
            shutil.rmtree(run)
            removed += 1
            if run.parent != folder and not any(run.parent.iterdir()):
                run.parent.rmdir()  # the run name's folder, now empty
    return removed

