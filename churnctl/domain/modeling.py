"""The model families churnctl trains, as sklearn pipelines over a mixed-type frame."""

from __future__ import annotations

from typing import Any

ALGORITHMS = ("logistic_regression", "hist_gradient_boosting")
# The gradient-boosted model's settings before any search; the search's first trial.
HGB_DEFAULTS: dict[str, Any] = {"learning_rate": 0.06, "max_leaf_nodes": 31,
                                "l2_regularization": 1.0, "min_samples_leaf": 20}
MAX_ITER = 500  # an upper bound: early stopping on a validation fold picks the count


def build_estimator(algorithm: str, numeric: list[str], categorical: list[str], seed: int,
                    params: dict[str, Any] | None = None) -> Any:
    """A fresh Pipeline(prep, model). `params`: `C` for the logistic regression; for the
    gradient-boosted model, overrides of HGB_DEFAULTS and `max_iter` (early stopping is the
    caller's, see training.py)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if algorithm == "logistic_regression":
        prep = ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                      OneHotEncoder(handle_unknown="ignore", min_frequency=5)),
                 categorical),
            ],
            sparse_threshold=0.0,
        )
        model = LogisticRegression(max_iter=2000, C=float((params or {}).get("C", 1.0)))
    elif algorithm == "hist_gradient_boosting":
        # Ordinal codes + native categorical splits: high-cardinality columns are not exploded.
        prep = ColumnTransformer(
            [
                ("num", "passthrough", numeric),
                ("cat", make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                   encoded_missing_value=-1, max_categories=250)), categorical),
            ],
            sparse_threshold=0.0,
        )
        cat_mask = [False] * len(numeric) + [True] * len(categorical)
        settings = {"max_iter": MAX_ITER, **HGB_DEFAULTS, **(params or {})}
        model = HistGradientBoostingClassifier(
            **settings, categorical_features=cat_mask if categorical else None,
            early_stopping=False, random_state=seed,
        )
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    return Pipeline([("prep", prep), ("model", model)])
