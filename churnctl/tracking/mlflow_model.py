"""The churnctl model as an MLflow pyfunc: `mlflow.pyfunc.load_model("models:/churn@champion")`
returns churn probabilities for a frame of feature columns.

The pyfunc wraps the same model file the local registry holds (a skops archive: feature specs,
dtypes, threshold travel with it; loading it runs no code from the file), stored as the
model's artifact `model.skops`; serving can therefore use either the pyfunc or that file.
Loading needs churnctl installed.

Imports mlflow at module level: import this module only when logging or loading a model.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from churnctl.domain.model import MODEL_FILE

MODEL_ARTIFACT = MODEL_FILE  # the key in the pyfunc's artifacts, and the file name inside it


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """Churn probability (the positive class) for each row."""

    def load_context(self, context: Any) -> None:
        from churnctl.domain.model import ChurnModel

        self.model = ChurnModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    # A DataFrame hint tells MLflow 3 to take the schema from the logged signature (without
    # a hint it warns on every load that it cannot validate inputs).
    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> Any:
        return self.model.predict_proba(model_input)


def _requirements() -> list[str]:
    # Given explicitly: MLflow's own inference runs the model in a subprocess (seconds per run).
    pins = []
    for dist in ("churnctl", "mlflow", "scikit-learn", "skops", "pandas", "numpy", "pyarrow"):
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def log_churn_model(model_file: Path, example: Any) -> Any:
    """Log the model in the active run with a signature and input example; its ModelInfo."""
    from mlflow.models import infer_signature

    from churnctl.domain.model import ChurnModel

    model = ChurnModel.load(model_file)
    inputs = None
    if example is not None:
        try:
            inputs = model.to_frame(example)
        except KeyError:
            inputs = None  # an older production model on other features: no example for it
    signature = None
    if inputs is not None:
        signature = infer_signature(inputs, model.predict_proba(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        # MLflow keeps an artifact's file name, and readers look for MODEL_ARTIFACT inside the
        # logged model (mlflow_registry.champion_version), whatever the source file is called.
        artifact = Path(tmp) / MODEL_ARTIFACT
        shutil.copyfile(model_file, artifact)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("mlflow_model_code.py")),
            artifacts={MODEL_ARTIFACT: str(artifact)},
            signature=signature,
            input_example=inputs,
            pip_requirements=_requirements(),
            metadata={"algorithm": model.algorithm, "threshold": model.threshold},
        )
