"""Score another export of the customer table with the production model.

`score_table` reads the file like ingest did (same sniffing, and the column plan the model
carries: types, spellings, pooled levels), and writes one row per input row: the id (or row
number) and the churn probability. Extra columns and the target column, if present, are
ignored; a missing feature column is an error that names it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from churnctl.atomic import atomic_path
from churnctl.errors import UserError
from churnctl.workspace import Workspace

OUTPUT_SUFFIXES = (".csv", ".parquet")
PROBABILITY = "churn_probability"


def _production_model(workspace: Workspace) -> tuple[Any, int]:
    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.domain.table_model import TableChurnModel

    registry = ModelRegistry(workspace.registry)
    production = registry.production()
    if production is None:
        raise UserError(f"no production model in {registry.root}; train one first with "
                        "`churnctl run --data PATH --target COLUMN`")
    model = registry.load_model(production.version)  # checked against the recorded sha256
    if not isinstance(model, TableChurnModel) or not model.plan:
        raise UserError(f"production model v{production.version} was trained on the built-in "
                        "event data, not a customer table; train one with `churnctl run --data "
                        "PATH --target COLUMN` (or score event data with `churnctl predict`)")
    return model, production.version


def _unseen_categories(model: Any, frame: pd.DataFrame, path: Path) -> list[str]:
    """Notices for categories training never saw (the model scores them as 'none of the known')."""
    notices = []
    for spec in model.features:
        if spec.kind != "categorical" or not spec.categories:
            continue
        values = frame[spec.name]
        unseen = values.notna() & ~values.astype(str).isin(spec.categories)
        if unseen.any():
            example = values[unseen].iloc[0]
            notices.append(f"{path.name}: column {spec.name}: {int(unseen.sum())} row(s) with a "
                           f"category not seen in training, e.g. {example!r}")
    return notices


def _input_notices(plan: Any, raw: pd.DataFrame, frame: pd.DataFrame, path: Path) -> list[str]:
    """What docs/own-data.md promises `predict --data` says: columns it ignored, and blank
    feature cells (a feature blank in every row moves every score: said loudest)."""
    known = {c.name for c in plan.columns} | {plan.target, plan.id, plan.time}
    extra = [str(c) for c in raw.columns if str(c) not in known]
    notices = [f"{path.name}: ignored {len(extra)} column(s) the model does not use: "
               f"{', '.join(extra[:8])}{' ...' if len(extra) > 8 else ''}"] if extra else []
    for column in plan.features:
        blank = int(frame[column.name].isna().sum())
        if blank == len(frame):
            notices.append(f"{path.name}: column {column.name} is blank in every row; every "
                           "score treats it as missing, check the export")
        elif blank:
            notices.append(f"{path.name}: column {column.name}: {blank} blank cell(s), scored "
                           "as missing")
    return notices


def score_table(workspace: Workspace, data_path: Path, out_path: Path) -> dict[str, Any]:
    """Write `out_path` (.csv or .parquet): id (or row_number) and churn_probability per row."""
    from churnctl.domain.metrics import classification_metrics
    from churnctl.domain.table_infer import TablePlan, apply_plan
    from churnctl.domain.table_read import read_table
    from churnctl.domain.table_target import encode_target

    if out_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--out {out_path}: use a .csv or .parquet file name")
    model, version = _production_model(workspace)
    plan = TablePlan.from_dict(model.plan)
    raw = read_table(data_path)
    frame, notices = apply_plan(plan, raw.frame, data_path, with_target=False)
    notices = (raw.notices + notices + _input_notices(plan, raw.frame, frame, data_path)
               + _unseen_categories(model, frame, data_path))
    id_column = str(frame.columns[0])  # apply_plan puts the id (or row_number) first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unseen categories: reported above, in one line each
        proba = model.predict_proba(frame)
    out = pd.DataFrame({id_column: frame[id_column].to_numpy(), PROBABILITY: proba})
    with atomic_path(out_path) as tmp:
        if out_path.suffix.lower() == ".csv":
            out.to_csv(tmp, index=False)
        else:
            out.to_parquet(tmp, index=False)
    result: dict[str, Any] = {
        "rows": len(out), "out": str(out_path), "model_version": version,
        "id_column": id_column, "threshold": model.threshold,
        "flagged": int((proba >= model.threshold).sum()),
        "mean_probability": round(float(proba.mean()), 6), "notices": notices,
    }
    columns = {c.strip().lower(): c for c in map(str, raw.frame.columns)}
    if plan.target.strip().lower() in columns:  # a past month's file: say how well it ranked
        y = encode_target(raw.frame[columns[plan.target.strip().lower()]], plan.positive,
                          plan.negative).to_numpy()
        known = ~pd.isna(y)
        if known.any() and len(set(y[known])) == 2:
            result["metrics"] = classification_metrics(y[known].astype(int), proba[known])
    return result
