"""Train a baseline and a candidate with scikit-learn; promote only what beats production."""

from __future__ import annotations

import json
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


class SklearnTrainer(Backend):
    name = "sklearn"
    stage = "train"
    description = "LogisticRegression baseline + HistGradientBoosting candidate, promotion gate"
    Options = SklearnTrainerOptions
    extra = "sklearn"
    modules = ("sklearn", "pandas")
    code_modules = ("churnctl.domain.modeling", "churnctl.domain.metrics",
                    "churnctl.domain.model", "churnctl.domain.quality")

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd
        from threadpoolctl import threadpool_limits

        from churnctl.domain.metrics import classification_metrics
        from churnctl.domain.model import ChurnModel, FeatureSpec
        from churnctl.domain.modeling import build_estimator
        from churnctl.domain.quality import single_feature_auc

        opts: SklearnTrainerOptions = ctx.options
        features = ctx.inputs["features"]
        schema = json.loads(features.file("feature_schema.json").read_text())
        numeric, categorical, target = schema["numeric"], schema["categorical"], schema["target"]
        train = pd.read_parquet(features.file("train.parquet"))
        test = pd.read_parquet(features.file("test.parquet"))
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
            raise GateFailed(f"leakage guard: feature {name} alone predicts {target} with ROC AUC "
                             f"{auc:.3f} > {opts.leakage_max_auc}; drop it or fix how it is computed")

        columns = numeric + categorical
        specs = [FeatureSpec(n, "numeric") for n in numeric] + [
            FeatureSpec(n, "categorical", tuple(sorted(map(str, train[n].dropna().unique()))[:1000]))
            for n in categorical]
        results: dict[str, dict[str, float]] = {}
        models: dict[str, ChurnModel] = {}
        for algorithm in opts.algorithms:
            ctx.log(f"fitting {algorithm} on {len(train):,} rows")
            estimator = build_estimator(algorithm, numeric, categorical, opts.seed)
            model = ChurnModel(estimator, specs, algorithm, id_column=schema["id"], target=target)
            with threadpool_limits(opts.threads):
                estimator.fit(model.to_frame(train[columns]), train[target].to_numpy())
            results[algorithm] = classification_metrics(test[target].to_numpy(),
                                                        model.predict_proba(test[columns]))
            model.metrics = results[algorithm]
            models[algorithm] = model
        reverse = opts.primary_metric != "brier"
        best = sorted(results, key=lambda a: results[a][opts.primary_metric], reverse=reverse)[0]
        models[best].save(ctx.out_dir / "model.pkl")
        write_json(ctx.out_dir / "evaluation.json", {
            "chosen": best, "primary_metric": opts.primary_metric, "models": results,
            "single_feature_auc": aucs,
        })
        metrics = {f"{k}": v for k, v in results[best].items()}
        for algorithm, values in results.items():
            metrics[f"{algorithm}.{opts.primary_metric}"] = values[opts.primary_metric]
        return StageOutput(metrics=metrics, summary={"chosen": best})

    def publish(self, ctx: StageContext, artifact: ArtifactRef) -> dict[str, Any]:
        """Register the model and decide promotion against production on the same test data."""
        from churnctl.domain.model_registry import ModelRegistry

        registry = ModelRegistry(ctx.workspace.registry)
        existing = registry.find_by_artifact(artifact.content_hash)
        if existing is None:
            existing = self._register(ctx, artifact, registry)
        return {"model_version": existing.version, "promoted": existing.status == "production",
                "decision": existing.decision}

    def _register(self, ctx: StageContext, artifact: ArtifactRef, registry: Any) -> Any:
        import pandas as pd

        from churnctl.domain.metrics import better, classification_metrics
        from churnctl.domain.model import ChurnModel

        opts: SklearnTrainerOptions = ctx.options
        candidate = ChurnModel.load(artifact.file("model.pkl"))
        metric = opts.primary_metric
        incumbent = registry.production()
        if incumbent is None:
            promote, decision = True, "first model: promoted"
        else:
            test = pd.read_parquet(ctx.inputs["features"].file("test.parquet"))
            current = ChurnModel.load(registry.model_path(incumbent.version))
            try:
                theirs = classification_metrics(test[candidate.target].to_numpy(),
                                                current.predict_proba(test))
            except KeyError as exc:
                promote, decision = True, f"production v{incumbent.version} cannot score this data ({exc}); promoted"
            else:
                ours = candidate.metrics
                promote = better(ours, theirs, metric, opts.promotion_margin)
                verdict = "promoted" if promote else "kept production"
                decision = (f"{metric} {ours[metric]:.4f} vs production v{incumbent.version} "
                            f"{theirs[metric]:.4f} on the same test data (margin "
                            f"{opts.promotion_margin}): {verdict}")
        ctx.log(decision)
        return registry.register(artifact.file("model.pkl"), artifact.content_hash,
                                 candidate.algorithm, candidate.metrics, candidate.schema,
                                 promote=promote, decision=decision)
