"""The project workspace: like git or DVC, the current directory unless told otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".churnctl"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def artifacts(self) -> Path:
        return self.state / "artifacts"

    @property
    def runs(self) -> Path:
        return self.state / "runs"

    @property
    def registry(self) -> Path:
        return self.state / "registry"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def artifact_dir(self, stage: str, key: str) -> Path:
        return self.artifacts / stage / key[:16]

    def ensure(self) -> Workspace:
        for path in (self.artifacts, self.runs, self.registry, self.reports):
            path.mkdir(parents=True, exist_ok=True)
        # Like DVC for its outputs: local state and generated pages stay out of `git status`.
        for folder, why in ((self.state, "churnctl's cache, runs and registry: local state"),
                            (self.reports, "pages and files churnctl generates")):
            ignore = folder / ".gitignore"
            if not ignore.exists():
                ignore.write_text(f"# {why}, not source (written by churnctl)\n*\n")
        return self
