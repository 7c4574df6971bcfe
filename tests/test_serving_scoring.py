"""The compiled scorer gives the pipeline's own probabilities, or falls back to the pipeline."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnctl.domain.model import ChurnModel, FeatureSpec
from churnctl.domain.modeling import build_estimator
from churnctl.serving.scoring import UnknownCategory, compile_scorer
from tests.serving_demo import CATEGORIES, NUMERIC, demo_features, train_demo_model

CATEGORICAL = list(CATEGORIES)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = demo_features(1500, seed=3)
    data.loc[::97, "country"] = "NZ"  # rare: grouped as infrequent by min_frequency=5 encoders
    data.loc[::11, "quiz_avg_score_7d"] = np.nan
    return data


def _specs(frame: pd.DataFrame) -> list[FeatureSpec]:
    return [FeatureSpec(n, "numeric") for n in NUMERIC] + [
        FeatureSpec(n, "categorical", tuple(sorted(frame[n].dropna().unique())))
        for n in CATEGORICAL]


def _trained(frame: pd.DataFrame, estimator: Any, name: str) -> ChurnModel:
    model = ChurnModel(estimator, _specs(frame), name)
    estimator.fit(model.to_frame(frame), frame["churn_label"])
    return model


def _messy(frame: pd.DataFrame, size: int = 400, seed: int = 5) -> pd.DataFrame:
    """Rows with unseen categories, missing categories and missing numbers."""
    rows = frame.sample(size, random_state=seed).reset_index(drop=True)
    rows.loc[::5, "country"] = "Atlantis"  # unseen: OrdinalEncoder's -1, missing for the trees
    rows.loc[::7, "plan"] = None
    rows.loc[::3, "events_30d"] = np.nan
    return rows


def _expected(model: ChurnModel, rows: pd.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.predict_proba(rows)


def _pipelines() -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler

    def linear(numeric: Any, categorical: Any) -> Any:
        prep = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
        return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=3000))])

    return {
        "train stage: logistic regression": build_estimator(
            "logistic_regression", NUMERIC, CATEGORICAL, 0),
        "train stage: gradient boosting": build_estimator(
            "hist_gradient_boosting", NUMERIC, CATEGORICAL, 0).set_params(model__max_iter=40),
        "minmax + drop first": linear(
            make_pipeline(SimpleImputer(strategy="mean"), MinMaxScaler()),
            OneHotEncoder(drop="first", handle_unknown="ignore")),
        "robust + sparse one-hot": linear(
            make_pipeline(SimpleImputer(), RobustScaler()),
            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=10)),
    }


@pytest.mark.parametrize("name", list(_pipelines()))
def test_compiled_scorer_matches_the_pipeline(frame: pd.DataFrame, name: str) -> None:
    model = _trained(frame, _pipelines()[name], name)
    scorer = compile_scorer(model)
    assert scorer.kind in ("linear", "trees"), scorer.reason
    rows = _messy(frame)
    expected = _expected(model, rows)
    np.testing.assert_allclose(scorer.score_frame(rows), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scorer.score_records(rows.to_dict("records")), expected,
                               rtol=0, atol=1e-9)
    one = rows.iloc[[1]]
    assert scorer.score_records(one.to_dict("records"))[0] == pytest.approx(
        _expected(model, one)[0], abs=1e-12)


@pytest.mark.parametrize("algorithm", ["logistic", "hgb"])
def test_demo_models_compile(frame: pd.DataFrame, algorithm: str) -> None:
    frame = frame.fillna({"quiz_avg_score_7d": 0.0})
    model = train_demo_model(frame, algorithm)  # type: ignore[arg-type]
    scorer = compile_scorer(model)
    assert scorer.kind == ("linear" if algorithm == "logistic" else "trees")
    rows = frame.sample(300, random_state=1)
    np.testing.assert_allclose(scorer.score_frame(rows), model.predict_proba(rows), atol=1e-9)


def test_unsupported_step_falls_back_to_the_pipeline(frame: pd.DataFrame) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    prep = ColumnTransformer([("num", FunctionTransformer(np.log1p), NUMERIC),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])
    filled = frame.fillna({"quiz_avg_score_7d": 0.0})
    estimator = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=3000))])
    model = _trained(filled, estimator, "log")
    scorer = compile_scorer(model)
    assert scorer.kind == "pipeline"
    assert "FunctionTransformer" in scorer.reason
    rows = filled.sample(50, random_state=2)
    np.testing.assert_allclose(scorer.score_records(rows.to_dict("records")),
                               model.predict_proba(rows), atol=1e-12)


def test_encoder_that_rejects_unseen_categories(frame: pd.DataFrame) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer([("num", StandardScaler(), NUMERIC),
                              ("cat", OneHotEncoder(handle_unknown="error"), CATEGORICAL)])
    filled = frame.fillna({"quiz_avg_score_7d": 0.0})
    model = _trained(filled, Pipeline([("prep", prep), ("model", LogisticRegression())]), "s")
    scorer = compile_scorer(model)
    assert scorer.kind == "linear", scorer.reason
    record = filled.iloc[0].to_dict() | {"country": "Atlantis"}
    with pytest.raises(UnknownCategory, match="'Atlantis' for feature 'country'"):
        scorer.score_records([record])
    with pytest.raises(UnknownCategory, match="Atlantis"):
        scorer.score_frame(pd.DataFrame([record]))


def test_frame_scoring_reports_missing_and_mistyped_columns(frame: pd.DataFrame) -> None:
    frame = frame.fillna({"quiz_avg_score_7d": 0.0})
    model = train_demo_model(frame, "logistic")
    scorer = compile_scorer(model)
    with pytest.raises(KeyError, match="plan"):
        scorer.score_frame(frame.drop(columns=["plan"]))
    with pytest.raises(ValueError, match="events_7d"):
        scorer.score_frame(frame.assign(events_7d="many"))
