"""The `argo-rollouts` deploy backend (v4): the API as an Argo Rollouts canary.

Everything of the kubectl backend (kustomize overlays, offline validation, diff, server-side
apply), with the API Deployment replaced by a Rollout whose canary steps, analysis and
thresholds come from the profile; Rollout and AnalysisTemplate are validated against Argo
Rollouts' own CRD schemas. Regions are overlays named after them (infra/k8s/overlays/REGION).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from churnctl.backends.deploy_kubectl import KubectlDeploy, KubectlDeployOptions

if TYPE_CHECKING:
    from churnctl.deploy.validate import ValidationReport

# Argo's duration format (time.ParseDuration-like: 30s, 5m, 1h).
_DURATION = r"^\d+(ms|s|m|h)$"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class CanaryAnalysisOptions(BaseModel):
    """Thresholds and cadence of the canary analysis (every metric must pass)."""

    model_config = ConfigDict(extra="forbid")

    prometheus_address: str = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus the analysis queries (Argo's prometheus provider address)")
    region_prometheus: dict[str, str] = Field(
        default_factory=dict, description="Prometheus address per region (default: the above)")
    interval: str = Field("1m", pattern=_DURATION, description="time between measurements")
    count: int = Field(5, ge=1, description="measurements per analysis step")
    failure_limit: int = Field(1, ge=0, description="failed measurements tolerated")
    window: str = Field("5m", pattern=_DURATION, description="PromQL range of every query")
    max_error_ratio: float = Field(0.01, ge=0, le=1, description="5xx share of predictions")
    max_p95_latency_seconds: float = Field(0.25, gt=0)
    max_score_psi: float = Field(0.2, gt=0, description="PSI canary vs stable scores")
    max_high_risk_shift: float = Field(0.05, gt=0, le=1,
                                       description="change in the share above the threshold")
    high_risk_threshold: str = Field("0.5", description="a bucket bound: 0.1 .. 0.9")

    @field_validator("high_risk_threshold", mode="before")
    @classmethod
    def _bound(cls, value: Any) -> str:
        from churnctl.deploy.rollouts.analysis import PROBABILITY_BOUNDS

        text = repr(float(value)) if isinstance(value, int | float) else str(value)
        if text not in PROBABILITY_BOUNDS[:-1]:
            raise ValueError(f"{value!r} is not a bucket bound of the score histogram: use one "
                             f"of {', '.join(PROBABILITY_BOUNDS[:-1])}")
        return text


class ArgoRolloutsOptions(KubectlDeployOptions):
    overlay: str = Field("production", description="overlay the Rollout is made from")
    canary_steps: list[int] = Field([10, 50, 100], min_length=1,
                                    description="canary weights in %, rising, ending at 100")
    pause: str | None = Field(
        None, pattern=_DURATION,
        description="pause after each analysis: a duration, or none to wait for `deploy promote`")
    traffic_router: Literal["replicas", "nginx", "gateway"] = Field(
        "replicas", description="traffic split by replica ratio, by an nginx Ingress, or by a "
        "Gateway API HTTPRoute (Argo's gatewayAPI plugin)")
    ingress_host: str = Field("churn.example.com", description="host of the Ingress/HTTPRoute")
    gateway: str = Field("churnctl", description="parent Gateway of the HTTPRoute")
    regions: list[str] = Field(default_factory=list,
                               description="regions, each an overlay infra/k8s/overlays/REGION")
    region_contexts: dict[str, str] = Field(
        default_factory=dict, description="kubeconfig context per region (default: --context)")
    model_version: int | None = Field(None, ge=1, description="registry version the API pins")
    analysis: CanaryAnalysisOptions = Field(default_factory=CanaryAnalysisOptions)

    @field_validator("canary_steps")
    @classmethod
    def _rising_to_100(cls, value: list[int]) -> list[int]:
        if any(not 0 < w <= 100 for w in value) or value != sorted(set(value)):
            raise ValueError(f"{value} must be rising weights within 1..100, e.g. [10, 50, 100]")
        if value[-1] != 100:
            raise ValueError(f"{value} must end at 100 (the canary becomes the stable version)")
        return value

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not _REGION.match(r)]
        if bad:
            raise ValueError(f"{bad} are not region names like eu-west-1")
        if len(set(value)) != len(value):
            raise ValueError(f"{value} names a region twice")
        return value


class ArgoRolloutsDeploy(KubectlDeploy):
    name = "argo-rollouts"
    stage = "deploy"
    description = "Argo Rollouts canary with model-aware analysis (Prometheus), multi-region"
    Options = ArgoRolloutsOptions
    code_modules = (
        *KubectlDeploy.code_modules,
        "churnctl.deploy.rollouts.manifests",
        "churnctl.deploy.rollouts.analysis",
        "churnctl.deploy.rollouts.schema",
    )

    def render(self, options: ArgoRolloutsOptions) -> list[dict[str, Any]]:  # type: ignore[override]
        from churnctl.deploy.rollouts.manifests import to_canary

        return to_canary(super().render(options), options)

    def validate(  # type: ignore[override]
        self, options: ArgoRolloutsOptions, objects: list[dict[str, Any]]
    ) -> ValidationReport:
        from churnctl.deploy.rollouts import ROLLOUTS_API
        from churnctl.deploy.rollouts.schema import CRD_FILES, canary_rule_errors, crd_errors

        report = super().validate(options, objects)
        # The Kubernetes schemas know no Argo kinds: those are checked against the CRDs here.
        report.warnings = [w for w in report.warnings
                           if not any(f"{ROLLOUTS_API} {kind} in Kubernetes" in w
                                      for kind in CRD_FILES)]
        for obj in objects:
            report.errors.extend(crd_errors(obj))
            report.errors.extend(canary_rule_errors(obj))
        return report
