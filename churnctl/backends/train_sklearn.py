"""Train a baseline and a candidate with scikit-learn; promote only what beats production.

With `cv_folds` (on by default for customer tables) the algorithm is chosen by
cross-validation on the training set and the churn threshold by out-of-fold F1; the test set
then only measures the chosen model. Evaluation numbers for the report (curves, calibration,
gain by decile, permutation importance) go to `evaluation.json`, per-row test scores to
`test_predictions.parquet`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from churnctl.atomic import write_json
from churnctl.errors import DataError, GateFailed
from churnctl.stages import ArtifactRef, Backend, StageContext, StageOutput, StrictOptions

Algorithm = Literal["logistic_regression", "hist_gradient_boosting"]


class SklearnTrainerOptions(StrictOptions):
    algorithms: list[Algorithm] = Field(
        default_factory=lambda: ["logistic_regression", "hist_gradient_boosting"], min_length=1)
    primary_metric: Literal["pr_auc", "roc_auc", "brier"] = "pr_auc"
    promotion_margin: float = Field(0.005, ge=0, description="how much better than production")
    leakage_max_auc: float = Field(0.95, gt=0.5, le=1.0)
    seed: int = 42
    # One BLAS/OpenMP thread was 10x faster than two on a 2-core box (spin-wait contention).
    threads: int = Field(1, ge=1, description="BLAS/OpenMP threads for fitting")
    cv_folds: int | None = Field(
        None, ge=0, description="cross-validation folds to choose the algorithm (0 = off; "
        "default: 5 for customer tables, off for event data, whose snapshots repeat users)")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="churn cut-off (default: best out-of-fold F1, else 0.5)")
    importance_repeats: int = Field(3, ge=1, description="shuffles per feature")
    # Each shuffle re-scores the sample: 1,000 rows x 3 shuffles cost ~1 s on one core.
    importance_max_rows: int = Field(1000, ge=100, description="test rows used for importance")


class SklearnTrainer(Backend):
    name = "sklearn"
    stage = "train"
    description = "LogisticRegression baseline + HistGradientBoosting candidate, promotion gate"
    Options = SklearnTrainerOptions
    extra = "sklearn"
    modules = ("sklearn", "pandas")

    def run(self, ctx: StageContext) -> StageOutput:
        import numpy as np
        import pandas as pd
        from threadpoolctl import threadpool_limits

        from churnctl.domain.metrics import classification_metrics
        from churnctl.domain.model import MODEL_FILE, ChurnModel, FeatureSpec
        from churnctl.domain.modeling import build_estimator
        from churnctl.domain.quality import single_feature_auc
        from churnctl.domain.table_evaluation import (
            best_f1_threshold,
            cross_validate,
            data_profile,
            evaluate,
            permutation_importance,
        )
        from churnctl.domain.table_model import TableChurnModel

        opts: SklearnTrainerOptions = ctx.options
        features = ctx.inputs["features"]
        schema = features.meta("feature_schema")
        numeric, categorical, target = schema["numeric"], schema["categorical"], schema["target"]
        train = pd.read_parquet(features.table("train"))
        test = pd.read_parquet(features.table("test"))
        for name, frame in (("train", train), ("test", test)):
            if frame[target].nunique() < 2:
                raise DataError(f"{name} set: column {target} has one class only; "
                                "use more data or another split")

        aucs = single_feature_auc(train, train[target], numeric + categorical)
        leaks = {k: v for k, v in aucs.items() if v > opts.leakage_max_auc}
        write_json(ctx.workspace.reports / "leakage.json",
                   {"max_auc": opts.leakage_max_auc, "single_feature_auc": aucs, "leaks": leaks})
        if leaks:
            name, auc = max(leaks.items(), key=lambda kv: kv[1])
            raise GateFailed(f"leakage guard: feature {name} alone predicts {target} with ROC "
                             f"AUC {auc:.3f} > {opts.leakage_max_auc}; drop it or fix how it is "
                             "computed")

        columns = numeric + categorical
        specs = [FeatureSpec(n, "numeric") for n in numeric] + [
            FeatureSpec(n, "categorical",
                        tuple(sorted(map(str, train[n].dropna().unique()))[:1000]))
            for n in categorical]
        plan = features.meta("table_plan", None)
        folds = opts.cv_folds if opts.cv_folds is not None else (5 if plan is not None else 0)
        time = schema.get("time") if schema.get("source") == "table" else None
        y_train, y_test = train[target].to_numpy(), test[target].to_numpy()

        def new_model(algorithm: str) -> ChurnModel:
            estimator = build_estimator(algorithm, numeric, categorical, opts.seed)
            if plan is not None:
                return TableChurnModel(estimator, specs, algorithm, id_column=schema["id"],
                                       target=target, plan=plan)
            return ChurnModel(estimator, specs, algorithm, id_column=schema["id"], target=target)

        x_train = new_model(opts.algorithms[0]).to_frame(train[columns])
        results: dict[str, dict[str, float]] = {}
        cv: dict[str, dict[str, Any]] = {}
        models: dict[str, ChurnModel] = {}
        for algorithm in opts.algorithms:
            with threadpool_limits(opts.threads):
                if folds >= 2:
                    ctx.log(f"cross-validating {algorithm} ({folds} folds)")
                    cv[algorithm] = cross_validate(
                        _fold_fitter(new_model, algorithm, x_train, y_train), y_train, folds,
                        opts.seed, train[time].to_numpy() if time else None)
                ctx.log(f"fitting {algorithm} on {len(train):,} rows")
                model = new_model(algorithm)
                model.estimator.fit(x_train, y_train)
            results[algorithm] = classification_metrics(y_test, model.predict_proba(test[columns]))
            model.metrics = results[algorithm]
            models[algorithm] = model
        # With folds the test set only measures the chosen model; without, it also chooses.
        scores = {a: (cv[a]["mean"] if a in cv and cv[a]["folds"] else results[a])
                  for a in opts.algorithms}
        reverse = opts.primary_metric != "brier"
        best = sorted(scores, key=lambda a: scores[a][opts.primary_metric], reverse=reverse)[0]
        chosen = models[best]
        oof = cv[best]["oof"] if best in cv else None
        if opts.threshold is not None:
            chosen.threshold, how = opts.threshold, "set in the train options"
        elif oof is not None and (~np.isnan(oof)).any():
            chosen.threshold = best_f1_threshold(y_train, oof)
            how = "best F1 on out-of-fold predictions of the training set"
        else:
            chosen.threshold, how = 0.5, "default (no cross-validation to choose it)"
        chosen.save(ctx.out_dir / MODEL_FILE)
        proba = chosen.predict_proba(test[columns])
        keys = [schema["id"], *([schema["time"]] if schema.get("time") in test else [])]
        predictions = test[keys].copy()
        predictions["y_true"], predictions["proba"] = y_test, proba
        predictions.to_parquet(ctx.out_dir / "test_predictions.parquet", index=False)
        ctx.log(f"permutation importance of {best} on {min(len(test), opts.importance_max_rows):,}"
                " test rows")
        with threadpool_limits(opts.threads):
            importance = permutation_importance(
                chosen.estimator, chosen.to_frame(test[columns]), y_test, opts.primary_metric,
                opts.importance_repeats, opts.importance_max_rows, opts.seed)
        write_json(ctx.out_dir / "evaluation.json", {
            "chosen": best, "primary_metric": opts.primary_metric, "models": results,
            "cv": {a: {k: v for k, v in c.items() if k != "oof"} for a, c in cv.items()},
            "selection": "cross-validation" if cv else "test set",
            "threshold": {"value": chosen.threshold, "how": how},
            "single_feature_auc": aucs, "importance": importance,
            "data": data_profile(train, test, target, numeric, categorical),
            "split": schema.get("split", "time"),
            **evaluate(y_test, proba, chosen.threshold),
        })
        metrics = {f"{k}": v for k, v in results[best].items()}
        for algorithm, values in results.items():
            metrics[f"{algorithm}.{opts.primary_metric}"] = values[opts.primary_metric]
        for algorithm, values in cv.items():
            if values["folds"]:
                metrics[f"{algorithm}.cv_{opts.primary_metric}"] = \
                    values["mean"][opts.primary_metric]
        return StageOutput(metrics=metrics, summary={"chosen": best,
                                                     "threshold": chosen.threshold},
                           models={"model": MODEL_FILE},
                           tables={"test_predictions": "test_predictions.parquet"},
                           reports={"evaluation": "evaluation.json"})

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        """Register the model and decide promotion against production on the same test data."""
        from churnctl.domain.model_registry import ModelRegistry

        registry = ModelRegistry(ctx.workspace.registry)
        existing = registry.find_by_artifact(artifact.content_hash)
        if existing is None:
            if ctx.tracking is not None:  # production of record is the tracker's (v2+)
                from churnctl.tracking import pull_production

                pull_production(ctx.tracking, ctx.workspace, ctx.log)
            existing = self._register(ctx, artifact, registry)
        elif ctx.promote and existing.status != "production":
            ctx.log(f"--promote: v{existing.version} replaces production")
            existing = registry.set_production(existing.version)
        path = _comparison_path(ctx, artifact)
        comparison = json.loads(path.read_text()) if path.exists() else None
        return {"model_version": existing.version, "promoted": existing.status == "production",
                "decision": existing.decision, "incumbent": comparison}

    def _register(self, ctx: StageContext, artifact: ArtifactRef, registry: Any) -> Any:
        from churnctl.domain.model import ChurnModel
        from churnctl.promotion import decide

        opts: SklearnTrainerOptions = ctx.options
        candidate = ChurnModel.load(artifact.model())
        incumbent = registry.production()
        production, why_not = None, None
        if incumbent is not None:
            production, why_not = self._score_incumbent(ctx, registry, incumbent.version,
                                                        candidate.target)
        decision = decide(opts.primary_metric, opts.promotion_margin, candidate.metrics,
                          production, incumbent.version if incumbent else None,
                          cannot_compare=why_not, override=ctx.promote)
        ctx.log(decision.reason)
        # Kept beside the registry: a cached re-run reports the comparison made at registration.
        write_json(_comparison_path(ctx, artifact), {
            "version": decision.production_version, "metric": decision.metric,
            "margin": decision.margin, "candidate": decision.candidate,
            "production": decision.production, "promoted": decision.promote,
            "decision": decision.reason, "compared": decision.compared,
            "overridden": decision.overridden})
        return registry.register(artifact.model(), artifact.content_hash,
                                 candidate.algorithm, candidate.metrics, candidate.schema,
                                 promote=decision.promote, decision=decision.reason)

    def _score_incumbent(self, ctx: StageContext, registry: Any, version: int, target: str,
                         ) -> tuple[dict[str, float] | None, str | None]:
        """Production's metrics on this run's test rows, or why it cannot be scored on them."""
        import pandas as pd
        from threadpoolctl import threadpool_limits

        from churnctl.domain.metrics import classification_metrics

        opts: SklearnTrainerOptions = ctx.options
        test = pd.read_parquet(ctx.inputs["features"].table("test"))
        current = registry.load_model(version)
        missing = [name for name in current.feature_names if name not in test.columns]
        if missing:
            return None, (f"production v{version} needs {len(missing)} column(s) this data "
                          f"lacks, e.g. {missing[0]}")
        if target not in test.columns:
            return None, f"this data has no {target} column to score production on"
        with threadpool_limits(opts.threads):
            proba = current.predict_proba(test)
        return classification_metrics(test[target].to_numpy(), proba), None


def _comparison_path(ctx: StageContext, artifact: ArtifactRef) -> Path:
    return ctx.workspace.state / "comparisons" / f"{artifact.content_hash[:16]}.json"


def _fold_fitter(new_model: Callable[[str], Any], algorithm: str, x: Any, y: Any,
                 ) -> Callable[[Any, Any], Any]:
    """fit-and-predict on one cross-validation fold with a fresh estimator."""
    def fit_predict(train_idx: Any, val_idx: Any) -> Any:
        estimator = new_model(algorithm).estimator
        estimator.fit(x.iloc[train_idx], y[train_idx])
        return estimator.predict_proba(x.iloc[val_idx])[:, 1]
    return fit_predict
