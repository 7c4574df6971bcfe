"""Train a baseline and a tuned gradient-boosted candidate with scikit-learn; promote only
what beats production by more than noise.

Model choice, the boosting search, early stopping, calibration and the threshold all happen on
validation folds of the training set (domain/training.py, domain/folds.py); the chosen model is
then refitted on all training rows, and the test set measures it once. Evaluation numbers for
the report (curves, calibration, gain by decile, permutation importance) go to
`evaluation.json`, per-row test scores to `test_predictions.parquet`; the gate compares them
with production's scores on the same rows (paired bootstrap, promotion.py).
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
    promotion_margin: float = Field(
        0.0, ge=0, description="how much better than production the lower bound of the "
        "bootstrap interval must be")
    promotion_level: float = Field(0.9, gt=0, lt=1, description="two-sided level of the "
                                   "paired bootstrap interval (0.9: one-sided 95%)")
    bootstrap_resamples: int = Field(1000, ge=100)
    leakage_max_auc: float = Field(0.95, gt=0.5, le=1.0)
    seed: int = 42
    # One BLAS/OpenMP thread was 10x faster than two on a 2-core box (spin-wait contention).
    threads: int = Field(1, ge=1, description="BLAS/OpenMP threads for fitting")
    cv_folds: int | None = Field(
        None, ge=2, description="validation folds of the training set (default: 5 for "
        "customer tables, 3 embargoed time folds for event data)")
    # The search is fixed by default, never by the clock: a stage's result depends only on its
    # cache key, so two runs of the same data (a rerun after a kill, parity between profiles,
    # an upgrade gate) choose the same model however loaded the machine is.
    search_trials: int = Field(3, ge=1, description="settings each algorithm tries at most")
    budget_seconds: float | None = Field(
        None, ge=0, description="opt-in time limit for the search after every algorithm's "
        "first setting (the chosen model then depends on the machine's speed)")
    calibrate: bool = Field(True, description="Platt-scale probabilities on out-of-fold scores")
    threshold_rule: Literal["cost", "contact_share", "f1", "fixed"] = "cost"
    cost_ratio: float = Field(5.0, gt=1, description="a missed churner's cost in contacts")
    contact_share: float = Field(0.1, gt=0, lt=1, description="share of customers to contact")
    threshold: float | None = Field(None, gt=0, lt=1,
                                    description="churn cut-off (sets threshold_rule fixed)")
    importance_repeats: int = Field(3, ge=1, description="shuffles per feature")
    # Each shuffle re-scores the sample: 500 rows x 3 shuffles cost ~0.5 s on one core.
    importance_max_rows: int = Field(500, ge=100, description="test rows used for importance")


class SklearnTrainer(Backend):
    name = "sklearn"
    stage = "train"
    description = ("LogisticRegression + tuned HistGradientBoosting chosen on validation folds, "
                   "calibrated; bootstrap promotion gate")
    Options = SklearnTrainerOptions
    extra = "sklearn"
    modules = ("sklearn", "pandas")

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd
        from threadpoolctl import threadpool_limits

        from churnctl.domain.metrics import classification_metrics
        from churnctl.domain.model import MODEL_FILE
        from churnctl.domain.quality import single_feature_auc
        from churnctl.domain.table_evaluation import (
            calibration,
            data_profile,
            evaluate,
            permutation_importance,
        )
        from churnctl.domain.threshold import decision_threshold
        from churnctl.domain.training import platt, refit, select

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
        _leakage_gate(ctx, aucs, target)

        columns = numeric + categorical
        model_of = _model_factory(features, schema, train, opts.seed)
        x_train = model_of(opts.algorithms[0], {}).to_frame(train[columns])
        y_train, y_test = train[target].to_numpy(), test[target].to_numpy()
        folds = _folds(opts, schema, train, y_train)
        with threadpool_limits(opts.threads):
            try:
                selection = select(lambda a, p: model_of(a, p).estimator, opts.algorithms,
                                   x_train, y_train, folds, opts.primary_metric,
                                   opts.budget_seconds, opts.search_trials, opts.seed, ctx.log)
            except ValueError as exc:
                raise DataError(f"training set: {exc}") from None
            best = selection.best
            ctx.log(f"refitting {best.algorithm} on all {len(train):,} training rows")
            chosen = model_of(best.algorithm, best.params)
            chosen.estimator = refit(lambda a, p: model_of(a, p).estimator, best, x_train,
                                     y_train)
        chosen.calibration = platt(y_train, best.oof) if opts.calibrate else None
        oof = chosen.calibrate(best.oof)
        rule = "fixed" if opts.threshold is not None else opts.threshold_rule
        chosen.threshold, how = decision_threshold(
            rule, y_train, oof, cost_ratio=opts.cost_ratio, contact_share=opts.contact_share,
            fixed=opts.threshold)
        raw = chosen.estimator.predict_proba(chosen.to_frame(test[columns]))[:, 1]
        proba = chosen.calibrate(raw)
        chosen.metrics = classification_metrics(y_test, proba)
        chosen.save(ctx.out_dir / MODEL_FILE)
        keys = [schema["id"], *([schema["time"]] if schema.get("time") in test else [])]
        predictions = test[keys].copy()
        predictions["y_true"], predictions["proba"] = y_test, proba
        predictions.to_parquet(ctx.out_dir / "test_predictions.parquet", index=False)
        ctx.log(f"permutation importance of {best.algorithm} on "
                f"{min(len(test), opts.importance_max_rows):,} test rows")
        with threadpool_limits(opts.threads):
            importance = permutation_importance(
                chosen.estimator, chosen.to_frame(test[columns]), y_test, opts.primary_metric,
                opts.importance_repeats, opts.importance_max_rows, opts.seed)
        cv = {a: {"folds": len(folds.splits), "mean": t.mean, "std": t.std}
              for a, t in selection.by_algorithm().items()}
        write_json(ctx.out_dir / "evaluation.json", {
            "chosen": best.algorithm, "primary_metric": opts.primary_metric,
            "models": {best.algorithm: chosen.metrics}, "cv": cv,
            "selection": f"validation folds of the training set ({folds.kind})",
            "search": selection.to_dict(), "platt": chosen.calibration,
            "threshold": {"value": chosen.threshold, "how": how, "rule": rule},
            "single_feature_auc": aucs, "importance": importance,
            "data": data_profile(train, test, target, numeric, categorical),
            "split": schema.get("split", "time"), "split_detail": features.meta("split", None),
            **evaluate(y_test, proba, chosen.threshold),
            "calibration_before": calibration(y_test, raw) if chosen.calibration else None,
        })
        metrics = dict(chosen.metrics)
        for algorithm, values in cv.items():
            metrics[f"{algorithm}.cv_{opts.primary_metric}"] = values["mean"][opts.primary_metric]
        return StageOutput(metrics=metrics,
                           summary={"chosen": best.algorithm, "threshold": chosen.threshold,
                                    "trials": len(selection.trials), "folds": folds.kind},
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
        production, why_not, interval = None, None, None
        if incumbent is not None:
            scored = self._score_incumbent(ctx, registry, incumbent.version, candidate.target)
            production, why_not = scored[0], scored[1]
            if scored[2] is not None:
                interval = _paired_interval(opts, artifact, *scored[2])
        decision = decide(opts.primary_metric, opts.promotion_margin, candidate.metrics,
                          production, incumbent.version if incumbent else None,
                          cannot_compare=why_not, override=ctx.promote, interval=interval)
        ctx.log(decision.reason)
        # Kept beside the registry: a cached re-run reports the comparison made at registration.
        write_json(_comparison_path(ctx, artifact), {
            "version": decision.production_version, "metric": decision.metric,
            "margin": decision.margin, "candidate": decision.candidate,
            "production": decision.production, "promoted": decision.promote,
            "decision": decision.reason, "compared": decision.compared,
            "overridden": decision.overridden, "interval": decision.interval})
        return registry.register(artifact.model(), artifact.content_hash,
                                 candidate.algorithm, candidate.metrics, candidate.schema,
                                 promote=decision.promote, decision=decision.reason)

    def _score_incumbent(self, ctx: StageContext, registry: Any, version: int, target: str,
                         ) -> tuple[dict[str, float] | None, str | None, tuple[Any, Any] | None]:
        """Production's metrics on this run's test rows (and its labels and scores there), or
        why it cannot be scored on them."""
        import pandas as pd
        from threadpoolctl import threadpool_limits

        from churnctl.domain.metrics import classification_metrics

        opts: SklearnTrainerOptions = ctx.options
        test = pd.read_parquet(ctx.inputs["features"].table("test"))
        current = registry.load_model(version)
        missing = [name for name in current.feature_names if name not in test.columns]
        if missing:
            return None, (f"production v{version} needs {len(missing)} column(s) this data "
                          f"lacks, e.g. {missing[0]}"), None
        if target not in test.columns:
            return None, f"this data has no {target} column to score production on", None
        with threadpool_limits(opts.threads):
            proba = current.predict_proba(test)
        y = test[target].to_numpy()
        return classification_metrics(y, proba), None, (y, proba)


def _comparison_path(ctx: StageContext, artifact: ArtifactRef) -> Path:
    return ctx.workspace.state / "comparisons" / f"{artifact.content_hash[:16]}.json"


def _paired_interval(opts: SklearnTrainerOptions, artifact: ArtifactRef, y: Any,
                     production: Any) -> dict[str, Any] | None:
    """The bootstrap interval of candidate minus production on the same test rows."""
    import numpy as np
    import pandas as pd

    from churnctl.domain.bootstrap import paired_difference

    if not artifact.has_table("test_predictions"):
        return None  # an artifact from before per-row scores were kept
    scores = pd.read_parquet(artifact.table("test_predictions"))
    if len(scores) != len(y) or not np.array_equal(scores["y_true"].to_numpy(), y):
        return None  # not the same rows: the point comparison has to do
    return paired_difference(opts.primary_metric, y, scores["proba"].to_numpy(), production,
                             opts.bootstrap_resamples, opts.promotion_level,
                             opts.seed).to_dict()


def _leakage_gate(ctx: StageContext, aucs: dict[str, float], target: str) -> None:
    opts: SklearnTrainerOptions = ctx.options
    leaks = {k: v for k, v in aucs.items() if v > opts.leakage_max_auc}
    write_json(ctx.workspace.reports / "leakage.json",
               {"max_auc": opts.leakage_max_auc, "single_feature_auc": aucs, "leaks": leaks})
    if leaks:
        name, auc = max(leaks.items(), key=lambda kv: kv[1])
        raise GateFailed(f"leakage guard: feature {name} alone predicts {target} with ROC "
                         f"AUC {auc:.3f} > {opts.leakage_max_auc}; drop it or fix how it is "
                         "computed")


def _model_factory(features: ArtifactRef, schema: dict[str, Any], train: Any, seed: int,
                   ) -> Callable[[str, dict[str, Any]], Any]:
    """(algorithm, params) -> an unfitted ChurnModel (a TableChurnModel for customer tables)."""
    from churnctl.domain.model import ChurnModel, FeatureSpec
    from churnctl.domain.modeling import build_estimator
    from churnctl.domain.table_model import TableChurnModel

    numeric, categorical = schema["numeric"], schema["categorical"]
    specs = [FeatureSpec(n, "numeric") for n in numeric] + [
        FeatureSpec(n, "categorical", tuple(sorted(map(str, train[n].dropna().unique()))[:1000]))
        for n in categorical]
    plan = features.meta("table_plan", None)

    def make(algorithm: str, params: dict[str, Any]) -> Any:
        estimator = build_estimator(algorithm, numeric, categorical, seed, params)
        if plan is not None:
            return TableChurnModel(estimator, specs, algorithm, id_column=schema["id"],
                                   target=schema["target"], plan=plan)
        return ChurnModel(estimator, specs, algorithm, id_column=schema["id"],
                          target=schema["target"])
    return make


def _folds(opts: SklearnTrainerOptions, schema: dict[str, Any], train: Any, y: Any) -> Any:
    from churnctl.domain.folds import event_folds, table_folds

    if schema.get("source") == "table":
        time = schema.get("time")
        return table_folds(y, opts.cv_folds or 5, opts.seed,
                           train[time].to_numpy() if time else None)
    return event_folds(train[schema["time"]].to_numpy(), train[schema["id"]].to_numpy(), y,
                       opts.cv_folds or 3, schema.get("embargo_days", 30), opts.seed)
