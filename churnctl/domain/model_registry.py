"""The local model registry: numbered versions, their metrics, and which one is production.

Each version is a directory `v{n}/` holding the model file and `version.json`, a complete
description of it (metrics, feature schema, the model file's sha256, the decision made at
registration); `registry.json` indexes them and holds the production pointer. Guarantees:

- **whole versions only**: a version directory is written in a temp directory and renamed,
  so it exists whole or not at all; a crash after that rename but before the index write is
  repaired on the next read (the directory describes itself), and a version number is never
  handed out twice, because numbers are allocated past every directory on disk, not just past
  the index;
- **one writer**: every change happens under the workspace's writer lock (churnctl.lock), so
  two runs cannot allocate the same number or promote against a stale production model;
- **checked loads**: `load_model` refuses a file whose sha256 is not the one recorded.

With MLflow tracking (v2+) the `champion` alias is the production pointer of record; this
index is then a cache of it (churnctl.tracking.mlflow_registry keeps them in step).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.atomic import atomic_dir, sweep_stale, write_json
from churnctl.errors import UserError
from churnctl.hashing import file_sha256

INDEX = "registry.json"
VERSION_FILE = "version.json"
_VERSION_DIR = re.compile(r"^v(\d+)$")


def _model_file_name() -> str:
    from churnctl.domain.model import MODEL_FILE

    return MODEL_FILE


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
    sha256: str = ""  # of the model file, recorded at registration, checked before each load
    model_file: str = ""  # its name inside v{n}/
    promoted: bool = False  # the decision at registration (production may have moved since)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ModelVersion:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The workspace writer lock, re-entrant: commands that write already hold it."""
        from churnctl.lock import workspace_lock
        from churnctl.workspace import Workspace

        # The registry lives at <workspace>/.churnctl/registry.
        with workspace_lock(Workspace(self.root.parent.parent), "model registry"):
            yield

    def _read(self) -> dict[str, Any]:
        index = (json.loads(self.index_path.read_text()) if self.index_path.exists()
                 else {"production": None, "versions": []})
        return self._adopt_orphans(index)

    def _adopt_orphans(self, index: dict[str, Any]) -> dict[str, Any]:
        """Versions whose directory committed but whose index write a crash prevented."""
        listed = {row["version"] for row in index["versions"]}
        for number, folder in self._version_dirs():
            if number in listed or not (folder / VERSION_FILE).is_file():
                continue
            row = json.loads((folder / VERSION_FILE).read_text())
            row["status"] = "archived" if row.get("promoted") else "rejected"
            index["versions"].append(row)
            if row.get("promoted") and _newer_than_production(index, number):
                _point_at(index, number)  # complete the promotion the crash interrupted
        index["versions"].sort(key=lambda row: row["version"])
        return index

    def _version_dirs(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            match = _VERSION_DIR.match(folder.name)
            if match and folder.is_dir():
                found.append((int(match.group(1)), folder))
        return sorted(found)

    def versions(self) -> list[ModelVersion]:
        return [ModelVersion.from_dict(row) for row in self._read()["versions"]]

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
        entry = self.get(version)
        return self.root / f"v{version}" / (entry.model_file or _model_file_name())

    def load_model(self, version: int) -> Any:
        """The model of `version`, after checking its file against the recorded sha256."""
        from churnctl.domain.model import ChurnModel

        entry = self.get(version)
        if not entry.sha256:
            raise UserError(f"model version {version} in {self.root} was registered without a "
                            "file hash, so it cannot be checked; retrain with `churnctl run "
                            "--from train`")
        return ChurnModel.load(self.model_path(version), expected_sha256=entry.sha256)

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
        """Add a version (idempotent per training artifact) and, if `promote`, make it
        production. The version's directory commits whole before the index names it."""
        with self._writing():
            sweep_stale(self.root)  # under the lock: what a killed registration left
            existing = self.find_by_artifact(artifact)
            if existing is not None:
                return existing
            index = self._read()
            on_disk = [number for number, _ in self._version_dirs()]
            listed = [row["version"] for row in index["versions"]]
            number = max([0, *on_disk, *listed]) + 1
            entry = ModelVersion(
                version=number, artifact=artifact, algorithm=algorithm, metrics=metrics,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                status="production" if promote else "rejected", decision=decision,
                feature_schema=feature_schema, sha256=file_sha256(model_file),
                model_file=model_file.name, promoted=promote,
            )
            with atomic_dir(self.root / f"v{number}") as tmp:
                shutil.copy2(model_file, tmp / model_file.name)
                if file_sha256(tmp / model_file.name) != entry.sha256:
                    raise UserError(f"{model_file} changed while it was being registered; "
                                    "run again")
                write_json(tmp / VERSION_FILE, asdict(entry))
            if promote:
                _point_at(index, number)
            index["versions"].append(asdict(entry))
            write_json(self.index_path, index)
            return entry

    def set_production(self, version: int) -> ModelVersion:
        """Point production at an existing version (a rollback or a manual promotion)."""
        with self._writing():
            index = self._read()
            self.get(version)
            _point_at(index, version)
            write_json(self.index_path, index)
            return self.get(version)


def _newer_than_production(index: dict[str, Any], number: int) -> bool:
    return index["production"] is None or number > index["production"]


def _point_at(index: dict[str, Any], number: int) -> None:
    for row in index["versions"]:
        if row["status"] == "production":
            row["status"] = "archived"
        if row["version"] == number:
            row["status"] = "production"
    index["production"] = number
