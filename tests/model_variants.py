"""Model versions for canary and A/B tests, made from a finished run's production model."""

from __future__ import annotations

import dataclasses
from pathlib import Path


def register_shifted(workspace: Path, artifact: str = "broken-scores", shift: float = 3.0) -> int:
    """Register production's model with its log-odds shifted by `shift` (same ranking, other
    scores) as a new, unpromoted version; return its number."""
    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.workspace import Workspace

    registry = ModelRegistry(Workspace(workspace).registry)
    production = registry.production()
    assert production is not None
    model = registry.load_model(production.version)
    slope, intercept = model.calibration or (1.0, 0.0)
    shifted = dataclasses.replace(model, calibration=(slope, intercept + shift))
    path = workspace / f"{artifact}.skops"
    shifted.save(path)
    entry = registry.register(path, artifact, production.algorithm, {},
                              production.feature_schema, promote=False, decision="test")
    return entry.version


def register_corrupt(workspace: Path) -> int:
    """A version whose file no longer matches its recorded sha256 (refused at load)."""
    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.workspace import Workspace

    version = register_shifted(workspace, "broken-file")
    path = ModelRegistry(Workspace(workspace).registry).model_path(version)
    path.write_bytes(path.read_bytes()[:-16] + b"0" * 16)
    return version
