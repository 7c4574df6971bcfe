"""The trained model as churnctl stores it: an sklearn estimator plus its feature schema.

Serving, batch scoring and the registry only need this class; how it was trained lives in the
train backends.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnctl.atomic import atomic_path


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"categories": list(self.categories)}


@dataclass
class ChurnModel:
    estimator: Any  # an sklearn Pipeline taking a DataFrame with `feature_names` columns
    features: list[FeatureSpec]
    algorithm: str
    id_column: str = "user_id"
    target: str = "churn_label"
    metrics: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5

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
        out = pd.DataFrame(index=frame.index)
        for spec in self.features:
            column = frame[spec.name]
            if spec.kind == "numeric":
                out[spec.name] = pd.to_numeric(column, errors="coerce").astype("float64")
            else:
                out[spec.name] = column.astype("object").where(column.notna(), None)
        return out

    def predict_proba(self, data: pd.DataFrame | list[dict[str, Any]]) -> np.ndarray:
        """Churn probability (the positive class) for each row."""
        return self.estimator.predict_proba(self.to_frame(data))[:, 1]

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            pickle.dump(self, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(path: Path) -> ChurnModel:
        # Only files this workspace's registry wrote are loaded; never point it at foreign pickles.
        with path.open("rb") as handle:
            model = pickle.load(handle)
        if not isinstance(model, ChurnModel):
            raise TypeError(f"{path} does not hold a churnctl model")
        return model
