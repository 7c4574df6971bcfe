"""Batch scoring: every user's latest feature snapshot through the production model.

Writes `predictions.parquet` and `predictions.csv` (user_id, as_of, churn_probability,
churn_predicted, risk_rank, model_version), `top_k.csv` (the K highest risks) and
`summary.json`, each atomically: a reader sees the previous file or the new one. `--out` is a
directory, or a `.parquet` file name that the other files are named after.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnctl.atomic import atomic_path, write_json
from churnctl.domain.model import ChurnModel
from churnctl.domain.model_registry import ModelRegistry
from churnctl.errors import DataError, UserError
from churnctl.serving.compiled_batch import library_dir
from churnctl.serving.layout import UnknownCategory
from churnctl.serving.lookup import latest_features_path, read_latest_frame
from churnctl.serving.scoring import Scorer, compile_scorer
from churnctl.workspace import Workspace

COLUMNS = ["user_id", "as_of", "churn_probability", "churn_predicted", "risk_rank",
           "model_version"]


@dataclass
class BatchResult:
    rows: int
    model_version: int
    scorer: str
    as_of: str | None
    out_dir: Path
    files: dict[str, Path]
    top: list[dict[str, Any]]
    skipped_after_as_of: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    scorer_reason: str = ""  # why a faster scorer was not used ("" when none was refused)
    verified_rows: int = 0  # rows checked against the pipeline when the scorer loaded

    @property
    def rows_per_second(self) -> float:
        """Scoring throughput on the prepared features (reading and writing excluded)."""
        return self.rows / self.seconds["score"] if self.seconds.get("score") else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["files"] = {name: str(path) for name, path in self.files.items()}
        data["rows_per_second"] = round(self.rows_per_second)
        return data


def select_snapshots(frame: pd.DataFrame, id_column: str, as_of: date | None
                     ) -> tuple[pd.DataFrame, int]:
    """Each user's newest row (on or before `as_of` when given) and how many rows were later."""
    later = 0
    if as_of is not None:
        if "as_of" not in frame.columns:
            raise DataError("the features snapshot has no as_of column, so --as-of cannot apply")
        dates = pd.to_datetime(frame["as_of"]).dt.date
        keep = dates <= as_of
        later = int((~keep).sum())
        frame = frame[keep]
        if frame.empty:
            newest = dates.min()
            raise UserError(f"no snapshot on or before {as_of}: the earliest is {newest}; "
                            "pass a later --as-of or rebuild features")
    if frame[id_column].duplicated().any():
        order = "as_of" if "as_of" in frame.columns else None
        frame = (frame.sort_values(order, kind="stable") if order else frame)
        frame = frame.drop_duplicates(id_column, keep="last")
    return frame.reset_index(drop=True), later


def rank_predictions(ids: pd.Series, probabilities: np.ndarray) -> np.ndarray:
    """1 = highest churn risk; ties broken by user id so ranks are reproducible."""
    order = np.lexsort((ids.astype(str).to_numpy(), -probabilities))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def output_paths(out: Path) -> dict[str, Path]:
    """Where the files go: in directory `out`, or beside `out` when it names a .parquet file
    (`--out /data/predictions.parquet` -> predictions.csv, predictions_top_k.csv, ...)."""
    if out.suffix == ".parquet":
        stem = out.with_suffix("")
        return {"parquet": out, "csv": out.with_suffix(".csv"),
                "top_k": stem.with_name(stem.name + "_top_k.csv"),
                "summary": stem.with_name(stem.name + "_summary.json")}
    return {"parquet": out / "predictions.parquet", "csv": out / "predictions.csv",
            "top_k": out / "top_k.csv", "summary": out / "summary.json"}


def _write(frame: pd.DataFrame, files: dict[str, Path], top_k: int) -> None:
    with atomic_path(files["parquet"]) as tmp:
        frame.to_parquet(tmp, index=False)
    with atomic_path(files["csv"]) as tmp:
        frame.to_csv(tmp, index=False)
    top = frame.nsmallest(top_k, "risk_rank").sort_values("risk_rank")
    with atomic_path(files["top_k"]) as tmp:
        top.to_csv(tmp, index=False)


def score_frame(model: ChurnModel, frame: pd.DataFrame, library_dir: Path | None = None,
                compile_library: bool = True) -> tuple[np.ndarray, Scorer, float]:
    """Probabilities, the scorer used and the seconds scoring took (after compiling).

    The scorer is verified on synthetic rows and on rows of `frame` itself. With `library_dir`,
    gradient boosting is scored by a compiled tree library cached there (compiled on the first
    run of a model, seconds; `compile_library=False` uses only an already cached one).
    """
    scorer = compile_scorer(model, sample=frame, library_dir=library_dir,
                            compile_library=compile_library)
    start = time.perf_counter()
    try:
        probabilities = scorer.score_frame(frame)
    except KeyError as exc:
        raise DataError(f"the features snapshot lacks columns the model needs: {exc}") from exc
    except (UnknownCategory, ValueError) as exc:
        raise DataError(f"cannot score the features snapshot: {exc}") from exc
    return probabilities, scorer, time.perf_counter() - start


def score_latest(
    workspace: Workspace,
    as_of: date | None = None,
    out_dir: Path | None = None,
    top_k: int = 100,
    features_path: Path | None = None,
) -> BatchResult:
    """Score the latest snapshot of every user with the production model and write the files."""
    clock = {"start": time.perf_counter()}
    registry = ModelRegistry(workspace.registry)
    entry = registry.production()
    if entry is None:
        raise UserError(f"no production model in {registry.root}; train and promote one with "
                        "`churnctl run`")
    path = features_path or latest_features_path(workspace)
    if path is None:
        raise UserError(f"no features artifact in {workspace.root}; build one with `churnctl run`")
    model = registry.load_model(entry.version)  # checked against the recorded sha256
    id_column = model.id_column
    if features_path is None:  # the artifact's, through its features backend (Feast in v3)
        frame, _ = read_latest_frame(workspace, path, id_column)
    else:
        frame = pd.read_parquet(path)
    if id_column not in frame.columns:
        raise DataError(f"{path} has no {id_column!r} column to identify users")
    frame, later = select_snapshots(frame, id_column, as_of)
    clock["read"] = time.perf_counter()
    probabilities, scorer, scoring = score_frame(model, frame, library_dir(workspace))
    clock["scored"] = time.perf_counter()
    out = pd.DataFrame({
        "user_id": frame[id_column].to_numpy(),
        "as_of": frame["as_of"].to_numpy() if "as_of" in frame.columns else None,
        "churn_probability": probabilities,
        "churn_predicted": probabilities >= model.threshold,
        "risk_rank": rank_predictions(frame[id_column], probabilities),
        "model_version": entry.version,
    }, columns=COLUMNS)
    target = out_dir or workspace.reports / "predictions"
    files = output_paths(target)
    _write(out, files, top_k)
    top = out.nsmallest(min(top_k, 10), "risk_rank").sort_values("risk_rank")
    newest = str(pd.to_datetime(out["as_of"]).max().date()) if out["as_of"].notna().any() else None
    result = BatchResult(
        rows=len(out), model_version=entry.version, scorer=scorer.kind,
        scorer_reason=scorer.reason, verified_rows=scorer.verified_rows, as_of=newest,
        out_dir=files["parquet"].parent, files=files,
        top=[{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
             for row in top.astype({"as_of": str}).to_dict("records")],
        skipped_after_as_of=later,
        seconds={"read": clock["read"] - clock["start"],
                 "compile": clock["scored"] - clock["read"] - scoring,
                 "verify": scorer.verify_seconds, "score": scoring,
                 "write": time.perf_counter() - clock["scored"],
                 "total": time.perf_counter() - clock["start"]},
    )
    write_json(files["summary"], result.to_dict())
    return result
