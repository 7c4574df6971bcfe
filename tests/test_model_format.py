"""The model file: a skops archive whose loading never runs code from the file.

Each refusal test also shows that its file is really dangerous or really different without
the check (the pickle does run, the custom class is constructed by a trusting load, the
flipped file is another file), so it fails if the guarantee it covers is removed.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from churnctl.domain import model_file
from churnctl.domain.model import MODEL_FILE, ChurnModel, FeatureSpec, ModelFileError
from churnctl.domain.model_registry import ModelRegistry
from churnctl.domain.modeling import ALGORITHMS, build_estimator
from churnctl.domain.table_model import TableChurnModel
from churnctl.errors import DataError
from churnctl.hashing import file_sha256
from churnctl.serving.batch import score_latest
from churnctl.serving.model_holder import load_snapshot
from churnctl.serving.scoring import compile_scorer
from churnctl.workspace import Workspace

NUMERIC = ["tenure", "charges", "tickets"]
CATEGORICAL = ["plan", "country"]
PLAN = {"version": 1, "target": "Churn", "columns": [{"name": "plan", "kind": "categorical"}]}


def _frame(rows: int = 1500, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "user_id": [f"u{i:05d}" for i in range(rows)],
        "tenure": rng.integers(0, 72, rows).astype(float),
        "charges": rng.gamma(2.0, 30.0, rows),
        "tickets": rng.poisson(1.0, rows).astype(float),
        "plan": rng.choice(["basic", "plus", "pro"], rows),
        "country": rng.choice(["IN", "US", "UK", "CA", "NZ"], rows, p=[.4, .3, .2, .097, .003]),
    })
    frame.loc[::13, "charges"] = np.nan
    frame.loc[::29, "plan"] = None
    logit = 1.0 - 0.05 * frame["tenure"] + 0.4 * frame["tickets"] + (frame["plan"] == "basic")
    frame["churn_label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


def _specs(frame: pd.DataFrame) -> list[FeatureSpec]:
    return [FeatureSpec(n, "numeric") for n in NUMERIC] + [
        FeatureSpec(n, "categorical", tuple(sorted(frame[n].dropna().unique())))
        for n in CATEGORICAL]


def _trained(frame: pd.DataFrame, algorithm: str, cls: type[ChurnModel] = ChurnModel,
             **extra: Any) -> ChurnModel:
    model = cls(build_estimator(algorithm, NUMERIC, CATEGORICAL, seed=0), _specs(frame),
                algorithm, metrics={"pr_auc": 0.61, "roc_auc": 0.77, "brier": float("nan")},
                threshold=np.float64(0.3125), **extra)
    model.estimator.fit(model.to_frame(frame), frame["churn_label"])
    return model


@pytest.fixture(scope="module")
def models(frame: pd.DataFrame) -> dict[str, ChurnModel]:
    return {algorithm: _trained(frame, algorithm) for algorithm in ALGORITHMS}


def _same_data(loaded: ChurnModel, model: ChurnModel) -> None:
    for name in ("features", "algorithm", "id_column", "target", "threshold"):
        assert getattr(loaded, name) == getattr(model, name), name
    np.testing.assert_equal(loaded.metrics, model.metrics)  # NaN included


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip_keeps_the_model_and_its_probabilities(
        frame: pd.DataFrame, models: dict[str, ChurnModel], algorithm: str,
        tmp_path: Path) -> None:
    model = models[algorithm]
    path = tmp_path / MODEL_FILE
    model.save(path)
    assert zipfile.is_zipfile(path)  # a skops archive, not a pickle
    loaded = ChurnModel.load(path)
    assert type(loaded) is ChurnModel
    _same_data(loaded, model)
    expected = model.predict_proba(frame)
    np.testing.assert_allclose(loaded.predict_proba(frame), expected, rtol=0, atol=1e-12)
    # The compiled scorer reads private sklearn attributes: they survive the round trip.
    scorer = compile_scorer(loaded)
    assert scorer.kind != "pipeline", scorer.reason
    np.testing.assert_allclose(scorer.score_frame(frame), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scorer.score_frame(frame.head(3)), expected[:3], rtol=0,
                               atol=1e-9)


def test_table_model_round_trip_keeps_its_class_and_plan(frame: pd.DataFrame,
                                                         tmp_path: Path) -> None:
    model = _trained(frame, "hist_gradient_boosting", TableChurnModel, plan=PLAN,
                     id_column="customerID", target="Churn")
    path = tmp_path / MODEL_FILE
    model.save(path)
    loaded = ChurnModel.load(path)
    assert isinstance(loaded, TableChurnModel)
    assert loaded.plan == PLAN
    _same_data(loaded, model)
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame),
                               rtol=0, atol=1e-12)


class _Touch:
    """A pickle payload: unpickling it creates `path` (as a real attack would run code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def _registry_with(model_file: Path, root: Path) -> tuple[Workspace, ModelRegistry]:
    """A workspace whose production version is `model_file`, its sha256 duly recorded (as
    whoever can write the registry could do), so loads get past the hash to the format."""
    workspace = Workspace(root).ensure()
    registry = ModelRegistry(workspace.registry)
    registry.register(model_file, "artifact-1", "logistic_regression", {}, [], promote=True,
                      decision="test")
    return workspace, registry


def test_a_planted_pickle_is_refused_unread_by_load_predict_and_serve(
        frame: pd.DataFrame, tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Touch(proof)))
    assert proof.exists()  # the payload does run when unpickled

    marker = tmp_path / "marker"
    planted = tmp_path / "planted" / MODEL_FILE
    planted.parent.mkdir()
    planted.write_bytes(pickle.dumps(_Touch(marker)))
    workspace, registry = _registry_with(planted, tmp_path / "ws")
    entry = registry.production()
    path = registry.model_path(entry.version)
    features = tmp_path / "features.parquet"
    frame.to_parquet(features)

    with pytest.raises(ModelFileError) as direct:
        ChurnModel.load(path)
    with pytest.raises(DataError) as batch:  # `churnctl predict`
        score_latest(workspace, features_path=features, out_dir=tmp_path / "out")
    with pytest.raises(ModelFileError) as serve:  # the server's (re)load
        load_snapshot(registry, entry, max_batch=10)
    assert not marker.exists()
    for error in (direct, batch, serve):
        message = str(error.value)
        assert str(path) in message and "not a churnctl model file" in message
        assert "\n" not in message


class Planted:
    """A class of the test's own: constructing it from a file creates the file it names."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).touch()


def _archive(path: Path, estimator: Any) -> None:
    """A well-formed churnctl model archive around `estimator`, written without save()'s
    check."""
    sio.dump({"format": model_file.FORMAT, "version": model_file.FORMAT_VERSION,
              "meta": "{}", "estimator": estimator}, path)


def test_a_skops_file_with_a_custom_class_is_refused_unconstructed(tmp_path: Path) -> None:
    name = f"{Planted.__module__}.Planted"
    proof = tmp_path / "proof"
    _archive(tmp_path / "proof.skops", Planted(proof))
    sio.load(tmp_path / "proof.skops", trusted=[name])
    assert proof.exists()  # constructing the class does run its code

    marker = tmp_path / "marker"
    path = tmp_path / MODEL_FILE
    _archive(path, Planted(marker))
    with pytest.raises(ModelFileError) as error:
        ChurnModel.load(path)
    assert not marker.exists()
    message = str(error.value)
    assert str(path) in message and name in message and "\n" not in message


def test_an_sklearn_type_skops_trusts_but_churnctl_does_not_is_refused(
        frame: pd.DataFrame, tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    path = tmp_path / MODEL_FILE
    _archive(path, DummyClassifier().fit(frame[NUMERIC], frame["churn_label"]))
    assert sio.get_untrusted_types(file=path) == []  # skops alone would load it
    with pytest.raises(ModelFileError) as error:
        ChurnModel.load(path)
    message = str(error.value)
    assert str(path) in message and "sklearn.dummy.DummyClassifier" in message


def test_save_refuses_to_write_a_model_load_would_refuse(frame: pd.DataFrame,
                                                         tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    model = ChurnModel(DummyClassifier().fit(frame[NUMERIC], frame["churn_label"]),
                       [FeatureSpec(n, "numeric") for n in NUMERIC], "dummy")
    path = tmp_path / MODEL_FILE
    with pytest.raises(ModelFileError) as error:
        model.save(path)
    assert str(path) in str(error.value) and "sklearn.dummy.DummyClassifier" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # atomic: no file, no temp file left


def test_a_sha256_mismatch_is_refused_before_anything_is_read(
        models: dict[str, ChurnModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / MODEL_FILE
    models["logistic_regression"].save(path)
    original = file_sha256(path)
    assert isinstance(ChurnModel.load(path, expected_sha256=original), ChurnModel)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    flipped = file_sha256(path)

    def deserialize(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file was read before its hash was checked")

    monkeypatch.setattr(model_file, "schema_types", deserialize)
    monkeypatch.setattr(sio, "load", deserialize)
    monkeypatch.setattr(model_file.zipfile, "is_zipfile", deserialize)
    with pytest.raises(ModelFileError) as error:
        ChurnModel.load(path, expected_sha256=original)
    message = str(error.value)
    assert str(path) in message and original in message and flipped in message


def _first_split(model: ChurnModel) -> tuple[np.ndarray, int]:
    nodes = model.estimator[-1]._predictors[0][0].nodes
    return nodes, int(np.flatnonzero(nodes["is_leaf"] == 0)[0])


@pytest.mark.parametrize(("field", "value"), [
    ("left", 10**6),  # out of the nodes array
    ("right", 0),  # back to the root: predict would loop forever
    ("feature_idx", 99),  # a column the model does not have
])
def test_tree_indices_sklearn_does_not_check_are_checked_on_load(
        models: dict[str, ChurnModel], tmp_path: Path, field: str, value: int) -> None:
    model = copy.deepcopy(models["hist_gradient_boosting"])
    nodes, split = _first_split(model)
    nodes[field][split] = value
    path = tmp_path / MODEL_FILE
    model.save(path)
    with pytest.raises(ModelFileError) as error:
        ChurnModel.load(path)
    assert str(path) in str(error.value) and "tree 0" in str(error.value)
