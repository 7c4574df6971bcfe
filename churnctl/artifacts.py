"""Committed stage outputs: what an artifact holds, how it is hashed, committed and checked.

The contract a backend may rely on (docs/architecture.md, "Artifacts"):

- an artifact is a directory tree of any shape (nested directories included: a Spark
  part-directory, an MLflow model folder, Data Docs); its content hash covers every file
  under it, by relative path and content;
- it declares what it holds in its manifest: named tables (with their columns), models,
  reports and small metadata values, so a stage asks its input for `table("train")` instead
  of knowing file names by convention;
- it has a URI: `file://` of its directory, or what the stage declared for data that is not a
  local folder (an object store path, a topic's offset range), hashed like any other value;
- it is immutable once committed: written in a private temp directory, fsynced, renamed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnctl.errors import UserError

MANIFEST = "manifest.json"
_MISSING = object()


class ArtifactCorrupt(UserError):
    """A committed artifact no longer matches its manifest (a file deleted, truncated, edited)."""


@dataclass(frozen=True)
class Table:
    """A declared table: a file or a directory of part files, relative to the artifact (or a
    URI), with its columns (name -> type) when known."""

    path: str
    columns: dict[str, str] | None = None


@dataclass(frozen=True)
class Contents:
    """What a stage declares it wrote, beside its metrics and summary."""

    tables: dict[str, Table | str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    uri: str | None = None  # where the data lives when it is not this directory


def iter_files(root: Path) -> Iterator[Path]:
    """Every file under `root` (recursively), in a stable order, the manifest excluded."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.parent == root and name == MANIFEST:
                continue
            yield path


def tree_files(root: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(relative posix path -> sha256, relative path -> size) for every file under `root`."""
    from churnctl.hashing import file_sha256

    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for path in iter_files(root):
        relative = path.relative_to(root).as_posix()
        hashes[relative] = file_sha256(path)
        sizes[relative] = path.stat().st_size
    return hashes, sizes


def _parquet_columns(path: Path) -> dict[str, str] | None:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    try:
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    except Exception:  # not a parquet file after all: the table is declared without columns
        return None
    return {name: str(schema.field(name).type) for name in schema.names}


def declared_contents(root: Path, contents: Contents, files: dict[str, str], stage: str,
                      ) -> dict[str, Any]:
    """The manifest's `contents`: every declared local path must exist in the artifact."""
    def local(path: str, what: str) -> str:
        if "://" in path:
            return path
        clean = Path(path).as_posix().strip("/")
        if clean not in files and not any(name.startswith(clean + "/") for name in files):
            raise UserError(f"stage {stage}: declared {what} {path!r} is not in its output; "
                            "the backend must write it before returning")
        return clean

    tables = {}
    for name, table in contents.tables.items():
        table = table if isinstance(table, Table) else Table(table)
        path = local(table.path, f"table {name!r}")
        columns = table.columns
        if columns is None and "://" not in path and path.endswith(".parquet"):
            columns = _parquet_columns(root / path)
        tables[name] = {"path": path, "columns": columns}
    return {
        "tables": tables,
        "models": {n: local(p, f"model {n!r}") for n, p in contents.models.items()},
        "reports": {n: local(p, f"report {n!r}") for n, p in contents.reports.items()},
        "meta": contents.meta,
    }


@dataclass(frozen=True)
class ArtifactRef:
    """A committed, immutable stage output: its directory, files and declared contents."""

    stage: str
    key: str
    path: Path
    files: dict[str, str]  # relative path -> sha256, every file under the directory
    sizes: dict[str, int] = field(default_factory=dict)
    contents: dict[str, Any] = field(default_factory=dict)
    declared_uri: str | None = None

    @property
    def uri(self) -> str:
        return self.declared_uri or self.path.resolve().as_uri()

    @property
    def content_hash(self) -> str:
        from churnctl.hashing import value_sha256

        if self.declared_uri is None:
            return value_sha256(self.files)
        return value_sha256({"files": self.files, "uri": self.declared_uri})

    def file(self, name: str) -> Path:
        if name not in self.files:
            raise KeyError(f"artifact of stage {self.stage!r} has no file {name!r}")
        return self.path / name

    def _declared(self, kind: str, name: str) -> Any:
        entries = self.contents.get(kind, {})
        if name not in entries:
            have = ", ".join(sorted(entries)) or "none"
            raise UserError(f"the {self.stage} output has no {kind[:-1]} {name!r} (it has: "
                            f"{have}); the profile's {self.stage} backend does not produce "
                            "what this stage needs")
        return entries[name]

    def has_table(self, name: str) -> bool:
        return name in self.contents.get("tables", {})

    def table(self, name: str) -> Path:
        """Local path (a file or a directory of parts) of a declared table."""
        path = self._declared("tables", name)["path"]
        if "://" in path:
            raise UserError(f"the {self.stage} output's table {name!r} is at {path}, not on "
                            "this machine; read it with table_uri()")
        return self.path / path

    def table_uri(self, name: str) -> str:
        path = self._declared("tables", name)["path"]
        return path if "://" in path else (self.path / path).resolve().as_uri()

    def columns(self, name: str) -> dict[str, str] | None:
        return self._declared("tables", name)["columns"]

    def model(self, name: str = "model") -> Path:
        return self.path / self._declared("models", name)

    def has_model(self, name: str = "model") -> bool:
        return name in self.contents.get("models", {})

    def report(self, name: str) -> Path | None:
        path = self.contents.get("reports", {}).get(name)
        return self.path / path if path else None

    def meta(self, name: str, default: Any = _MISSING) -> Any:
        values = self.contents.get("meta", {})
        if name in values:
            return values[name]
        if default is _MISSING:
            return self._declared("meta", name)
        return default

    def missing_files(self) -> list[str]:
        """Recorded files that are gone or have another size (a cheap check on every hit)."""
        problems = []
        for name in self.files:
            try:
                size = (self.path / name).stat().st_size
            except OSError:
                problems.append(f"{name} (missing)")
                continue
            if name in self.sizes and size != self.sizes[name]:
                problems.append(f"{name} (size {size}, recorded {self.sizes[name]})")
        return problems

    def changed_files(self) -> list[str]:
        """Recorded files whose content no longer hashes to the manifest (`run --verify`)."""
        from churnctl.hashing import file_sha256

        problems = self.missing_files()
        if problems:
            return problems
        return [name for name, digest in self.files.items()
                if file_sha256(self.path / name) != digest]

    @classmethod
    def load(cls, path: Path) -> ArtifactRef:
        manifest = json.loads((path / MANIFEST).read_text())
        return cls(stage=manifest["stage"], key=manifest["key"], path=path,
                   files=manifest["files"], sizes=manifest.get("sizes", {}),
                   contents=manifest.get("contents", {}), declared_uri=manifest.get("uri"))
