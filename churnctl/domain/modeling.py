"""The model families churnctl trains, as sklearn pipelines over a mixed-type frame."""

from __future__ import annotations

from typing import Any

ALGORITHMS = ("logistic_regression", "hist_gradient_boosting")


def build_estimator(algorithm: str, numeric: list[str], categorical: list[str], seed: int) -> Any:
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
        model = LogisticRegression(max_iter=2000, C=1.0)
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
        model = HistGradientBoostingClassifier(
            learning_rate=0.06, max_iter=300, max_leaf_nodes=31, l2_regularization=1.0,
            categorical_features=cat_mask if categorical else None,
            early_stopping=True, validation_fraction=0.15, n_iter_no_change=20, random_state=seed,
        )
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    return Pipeline([("prep", prep), ("model", model)])
