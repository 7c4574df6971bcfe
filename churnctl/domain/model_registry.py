"""The local model registry: numbered versions, their metrics, and which one is production.

One JSON index written atomically plus one directory per version. Registering the same
training artifact twice returns the existing version, so publishing is idempotent.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.atomic import atomic_dir, write_json
from churnctl.errors import UserError

INDEX = "registry.json"
MODEL_FILE = "model.pkl"


@dataclass
class ModelVersion:
    version: int
    artifact: str  # content hash of the training artifact it came from
    algorithm: str
    metrics: dict[str, float]
    created_at: str
    status: str = "candidate"  # candidate | production | archived | rejected
    decision: str = ""
    feature_schema: list[dict[str, Any]] = field(default_factory=list)


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    def _read(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"production": None, "versions": []}
        return json.loads(self.index_path.read_text())

    def versions(self) -> list[ModelVersion]:
        return [ModelVersion(**row) for row in self._read()["versions"]]

    def get(self, version: int) -> ModelVersion:
        for row in self.versions():
            if row.version == version:
                return row
        raise UserError(f"model version {version} is not in the registry at {self.root}")

    def production(self) -> ModelVersion | None:
        index = self._read()
        if index["production"] is None:
            return None
        return self.get(index["production"])

    def find_by_artifact(self, artifact: str) -> ModelVersion | None:
        return next((v for v in self.versions() if v.artifact == artifact), None)

    def model_path(self, version: int) -> Path:
        return self.root / f"v{version}" / MODEL_FILE

    def register(
        self,
        model_file: Path,
        artifact: str,
        algorithm: str,
        metrics: dict[str, float],
        feature_schema: list[dict[str, Any]],
        promote: bool,
        decision: str,
    ) -> ModelVersion:
        existing = self.find_by_artifact(artifact)
        if existing is not None:
            return existing
        index = self._read()
        number = max((row["version"] for row in index["versions"]), default=0) + 1
        with atomic_dir(self.root / f"v{number}") as tmp:
            shutil.copy2(model_file, tmp / MODEL_FILE)
        entry = ModelVersion(
            version=number,
            artifact=artifact,
            algorithm=algorithm,
            metrics=metrics,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            status="production" if promote else "rejected",
            decision=decision,
            feature_schema=feature_schema,
        )
        if promote:
            for row in index["versions"]:
                if row["status"] == "production":
                    row["status"] = "archived"
            index["production"] = number
        index["versions"].append(asdict(entry))
        write_json(self.index_path, index)
        return entry

    def set_production(self, version: int) -> ModelVersion:
        """Point production at an existing version (a rollback or a manual promotion)."""
        index = self._read()
        self.get(version)
        for row in index["versions"]:
            if row["status"] == "production":
                row["status"] = "archived"
            if row["version"] == version:
                row["status"] = "production"
        index["production"] = version
        write_json(self.index_path, index)
        return self.get(version)
