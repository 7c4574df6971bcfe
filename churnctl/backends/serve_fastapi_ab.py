"""The `fastapi-ab` serve backend (v4): model variants side by side, customers assigned by hash.

Each variant is a registry alias (champion, challenger, ...) served by its own hot-reloading
churn API; a router assigns every customer by salted hash with the profile's weights
(churnctl.ab). Batch scoring (`churnctl predict`) stays on the champion (production).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from churnctl.backends.serve_fastapi import FastapiServe
from churnctl.serving.options import ServeOptions
from churnctl.stages import StrictOptions
from churnctl.workspace import Workspace

if TYPE_CHECKING:
    from churnctl.ab.app import AbRouter


class AbServeOptions(ServeOptions):
    variants: dict[str, float] = Field(
        default_factory=lambda: {"champion": 0.9, "challenger": 0.1},
        description="variant (a registry alias) -> share of customers; champion is the control")
    salt: str = Field("churnctl-ab-1", min_length=1,
                      description="hash salt: a new salt is a new experiment (reshuffles)")
    assignment_log: str = Field("ab/assignments.jsonl",
                                description="append-only log, relative to .churnctl/")
    mde: float = Field(0.05, gt=0, lt=1, description="minimum detectable effect (absolute)")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level of the test")
    power: float = Field(0.8, gt=0.5, lt=1, description="power at the MDE")
    baseline_rate: float = Field(0.35, gt=0, lt=1,
                                 description="expected champion outcome rate (sample size)")

    @field_validator("variants")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if "champion" not in value:
            raise ValueError(f"{list(value)} has no champion: the champion is the control")
        if len(value) < 2 or any(not w > 0 for w in value.values()):
            raise ValueError(f"{value}: two or more variants, each with a weight above 0")
        if not math.isclose(sum(value.values()), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights {value} sum to {sum(value.values()):g}, not 1")
        # The champion first: it is the control and answers /model and the docs.
        return {"champion": value["champion"], **{k: v for k, v in value.items()
                                                  if k != "champion"}}

    @model_validator(mode="after")
    def _one_worker(self) -> AbServeOptions:
        if self.workers != 1:
            raise ValueError("fastapi-ab runs one worker process (workers: 1); run more "
                             "replicas instead: assignment is by hash, so they agree")
        return self


class FastapiAbServe(FastapiServe):
    name: ClassVar[str] = "fastapi-ab"
    description: ClassVar[str] = (
        "A/B test of model variants (registry aliases): sticky hash assignment, per-variant "
        "metrics, assignment log; `churnctl ab report|promote`")
    Options: ClassVar[type[StrictOptions]] = AbServeOptions

    def log_path(self, workspace: Workspace, options: AbServeOptions) -> Path:
        return workspace.state / options.assignment_log

    def create_app(self, workspace: Workspace, options: AbServeOptions) -> AbRouter:  # type: ignore[override]
        from churnctl.ab.aliases import variant_registry
        from churnctl.ab.app import AbRouter
        from churnctl.ab.log import AssignmentLog
        from churnctl.serving.app import create_app

        apps = {name: create_app(workspace, options, registry=variant_registry(
            workspace, options, name)) for name in options.variants}
        return AbRouter(apps, dict(options.variants), options.salt,
                        AssignmentLog(self.log_path(workspace, options)))

    def missing_variants(self, workspace: Workspace, options: AbServeOptions) -> list[str]:
        """Variants whose alias holds no model yet (after a first run: every one but the
        champion): /ready answers 503 until each has one."""
        from churnctl.ab.aliases import variant_registry
        from churnctl.errors import ChurnctlError

        missing = []
        for name in options.variants:
            try:
                held = variant_registry(workspace, options, name).production()
            except (ChurnctlError, OSError, ValueError):
                held = None
            if held is None:
                missing.append(name)
        return missing

    def serve(self, workspace: Workspace, options: AbServeOptions,  # type: ignore[override]
              log_level: str = "info") -> None:
        import uvicorn

        uvicorn.run(self.create_app(workspace, options), host=options.host, port=options.port,
                    log_level=log_level, timeout_graceful_shutdown=math.ceil(
                        options.request_timeout_seconds))

    def report_options(self, options: AbServeOptions) -> dict[str, Any]:
        return {"alpha": options.alpha, "power": options.power, "mde": options.mde,
                "baseline": options.baseline_rate}
