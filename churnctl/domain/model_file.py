"""The model file: one skops archive holding the estimator and the model's plain data.

A pickle runs whatever code its author chose when it is loaded, so a planted `model.pkl` was
code execution in `predict` and `serve`. skops rebuilds objects from a JSON schema and only
the types it is told to trust. The archive's top level is a dict: `format` and `version`
(this layout), `meta` (a JSON string: feature specs, algorithm, threshold, metrics, ...) and
`estimator` (the sklearn Pipeline). One file, so a registry can hash one file.

Loading checks, in order and before anything is constructed: the sha256 (when the caller
knows it), that the file is a zip archive at all (a pickle is refused unread), and that every
type its schema names is in TRUSTED_TYPES. Only then does skops build the objects, and the
trees are bounds-checked before the model can score a row.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from churnctl.atomic import atomic_path
from churnctl.domain.model_trees import check_trees
from churnctl.errors import DataError
from churnctl.hashing import file_sha256

FORMAT = "churnctl-model"
FORMAT_VERSION = 1

# Every type the pipelines of churnctl/domain/modeling.py are made of once fitted (both
# algorithms, with and without categorical columns), found by walking the schema of dumped
# models. skops trusts more by default (every sklearn estimator); a file naming any type not
# listed here is refused, whatever skops would accept. Four of these skops does not trust by
# default: numpy.dtype, functools.partial and check_array (HistGradientBoosting's internal
# FunctionTransformer holds partial(check_array, ...)), and TreePredictor, whose raw node
# indices sklearn does not bounds-check: model_trees.check_trees does that after loading.
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
    "functools.partial",
    "numpy.dtype",
    "numpy.ndarray",
    # Numeric scalars are inert values; which ones a fitted pipeline holds depends on the data.
    "numpy.bool",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.uint64",
    "numpy.random._generator.Generator",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.utils.validation.check_array",
)
_TRUSTED = frozenset(TRUSTED_TYPES)
_RETRAIN = "retrain it with `churnctl run`"


class ModelFileError(DataError):
    """A model file that churnctl refuses to load; the message names the file and why."""


def write_model_file(path: Path, estimator: Any, meta: dict[str, Any]) -> None:
    """Write the archive atomically; refuse to write one that `read_model_file` would refuse."""
    import skops.io as sio

    # A NaN metric (ROC AUC of a one-class fold) is written as NaN, which json reads back.
    payload = {"format": FORMAT, "version": FORMAT_VERSION,
               "meta": json.dumps(meta, sort_keys=True, default=_scalar),
               "estimator": estimator}
    with atomic_path(path) as tmp:
        sio.dump(payload, tmp)
        # Checked at training time, so a pipeline change that needs a new trusted type fails
        # here, not later in `serve` when the model is loaded.
        _check_types(tmp, path)


def read_model_file(path: Path, expected_sha256: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(estimator, meta) of a model file, after the checks in the module docstring."""
    import skops.io as sio

    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if expected_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_sha256.lower():
            raise ModelFileError(f"{path}: sha256 is {actual}, expected {expected_sha256}; it "
                                 "is not the file that was recorded, refusing to load it")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a churnctl model file (skops archive); a model "
                             f"saved as a pickle by an older churnctl is not loaded: {_RETRAIN}")
    _check_types(path, path)
    try:
        payload = sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # a corrupt or crafted archive: any failure is a refusal
        raise ModelFileError(f"cannot load model file {path}: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from exc
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        raise ModelFileError(f"{path} is a skops archive but not a churnctl model")
    if payload.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has churnctl model format {payload.get('version')!r}; "
                             f"this churnctl reads format {FORMAT_VERSION}: {_RETRAIN}")
    try:
        meta = json.loads(payload["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable model metadata ({exc})") from exc
    estimator = payload.get("estimator")
    if not hasattr(estimator, "predict_proba"):
        raise ModelFileError(f"{path} holds no fitted classifier")
    problem = check_trees(estimator)
    if problem:
        raise ModelFileError(f"{path}: {problem}; refusing to load it")
    return estimator, meta


def _check_types(archive: Path, name: Path) -> None:
    untrusted = sorted(schema_types(archive) - _TRUSTED)
    if untrusted:
        raise ModelFileError(f"{name} holds types churnctl does not trust: "
                             f"{', '.join(untrusted)}; refusing to load it")


def schema_types(archive: Path) -> set[str]:
    """Every `module.class` the archive's schema names (skops imports exactly these)."""
    try:
        with zipfile.ZipFile(archive) as handle:
            schema = json.loads(handle.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{archive} is not a readable skops archive ({exc})") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:  # iterative: a crafted schema may nest deeper than the recursion limit
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                found.add(f"{node.get('__module__')}.{node.get('__class__')}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _scalar(value: Any) -> Any:
    # numpy scalars (np.int64 metrics, np.float32 thresholds) as the Python numbers they hold.
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise TypeError(f"model metadata holds a {type(value).__name__}, not plain data")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
