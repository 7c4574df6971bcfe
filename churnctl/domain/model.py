"""The trained model as churnctl stores it: an sklearn estimator plus its feature schema.

Serving, batch scoring and the registry only need this class; how it was trained lives in the
train backends. On disk it is one skops file (`MODEL_FILE`, see model_file.py): loading it
never runs code from the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from churnctl.domain.model_file import ModelFileError, read_model_file, write_model_file

MODEL_FILE = "model.skops"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"categories": list(self.categories)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(data["name"], data["kind"], tuple(data.get("categories", ())))


@dataclass
class ChurnModel:
    estimator: Any  # an sklearn Pipeline taking a DataFrame with `feature_names` columns
    features: list[FeatureSpec]
    algorithm: str
    id_column: str = "user_id"
    target: str = "churn_label"
    metrics: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5
    # Platt scaling on the estimator's log-odds, (slope, intercept), fitted on out-of-fold
    # scores at training; None = the estimator's probabilities as they are.
    calibration: tuple[float, float] | None = None
    kind: ClassVar[str] = "churn"  # names the class in the model file (see _model_class)

    @property
    def feature_names(self) -> list[str]:
        return [spec.name for spec in self.features]

    @property
    def schema(self) -> list[dict[str, Any]]:
        return [spec.to_dict() for spec in self.features]

    def to_frame(self, data: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
        """Columns in training order with training dtypes; unknown extra columns dropped."""
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame.from_records(data)
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise KeyError(f"missing feature columns: {', '.join(missing)}")
        columns = {}
        for spec in self.features:
            column = frame[spec.name]
            if spec.kind == "numeric":
                columns[spec.name] = pd.to_numeric(column, errors="coerce").astype("float64")
            else:
                columns[spec.name] = column.astype("object").where(column.notna(), None)
        # One constructor call, not a column insert per feature: thousands of inserts
        # fragment the frame (a PerformanceWarning each) and cost seconds on wide tables.
        return pd.DataFrame(columns, index=frame.index, columns=self.feature_names)

    def predict_proba(self, data: pd.DataFrame | list[dict[str, Any]]) -> np.ndarray:
        """Churn probability (the positive class) for each row, calibrated."""
        return self.calibrate(self.estimator.predict_proba(self.to_frame(data))[:, 1])

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        """The estimator's probabilities mapped through the calibration fitted at training.

        Every scorer (the pipeline, the compiled paths) ends here, so they agree."""
        if self.calibration is None:
            return proba
        slope, intercept = self.calibration
        # np.clip's own values, without its Python wrapper (a fifth of a one-row call)
        clipped = np.minimum(np.maximum(proba, 1e-15), 1 - 1e-15)
        return 1.0 / (1.0 + np.exp(-(slope * np.log(clipped / (1 - clipped)) + intercept)))

    def save(self, path: Path) -> None:
        """Write the model file atomically: readers see the old file or the new one."""
        meta = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("estimator", "features")}
        meta |= {"kind": self.kind, "features": self.schema}
        write_model_file(path, self.estimator, meta)

    @staticmethod
    def load(path: Path, expected_sha256: str | None = None) -> ChurnModel:
        """The model in `path` (a ChurnModel or subclass); with `expected_sha256`, the file's
        hash is checked before anything in it is read."""
        estimator, meta = read_model_file(path, expected_sha256)
        try:
            cls = _model_class(meta.pop("kind"))
            features = [FeatureSpec.from_dict(spec) for spec in meta.pop("features")]
            if meta.get("calibration") is not None:
                meta["calibration"] = tuple(float(v) for v in meta["calibration"])
            return cls(estimator=estimator, features=features, **meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: unusable model metadata ({exc})") from exc


def _model_class(kind: str) -> type[ChurnModel]:
    # A fixed mapping: the file picks one of these classes, never an arbitrary import.
    if kind == ChurnModel.kind:
        return ChurnModel
    from churnctl.domain.table_model import TableChurnModel  # imports this module

    if kind == TableChurnModel.kind:
        return TableChurnModel
    raise ValueError(f"unknown model kind {kind!r}")
