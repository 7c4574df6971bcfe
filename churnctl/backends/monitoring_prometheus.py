"""Monitoring for v2+: PSI/KS drift checks with retraining, exported to Prometheus.

The work happens in `churnctl monitor drift` (churnctl/monitoring) and on the API's /metrics;
this class makes the profile's `monitoring:` binding a validated, discoverable backend.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from churnctl.stages import Backend, StrictOptions


class PrometheusMonitoringOptions(StrictOptions):
    psi_warn: float = Field(0.1, gt=0, description="PSI at which a feature is reported as drifting")
    psi_fail: float = Field(0.25, gt=0, description="PSI at which the check fails (exit 2)")
    retrain_on_fail: bool = Field(False, description="retrain when the check fails")

    @model_validator(mode="after")
    def _ordered(self) -> PrometheusMonitoringOptions:
        if self.psi_fail < self.psi_warn:
            raise ValueError("psi_fail must be at least psi_warn")
        return self


class PrometheusMonitoring(Backend):
    name = "prometheus"
    stage = "monitoring"
    description = "PSI/KS drift check + retrain (`monitor drift`), gauges on /metrics"
    Options = PrometheusMonitoringOptions
    extra = "serve"
    modules = ("pandas", "scipy", "prometheus_client")
