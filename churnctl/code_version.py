"""A stage's code version, found from the truth: what its backend really imports.

The version is three things, each part of the stage's cache key and each named by `plan`
when it changes:

- `modules`: the content hash of every module of the backend's own package that its module
  imports, transitively, found by parsing import statements (function-level imports
  included, since backends import their heavy code inside `run`); parent packages'
  `__init__.py` count too, because importing a module runs them;
- `distributions`: the versions of the third-party distributions those modules import, plus
  the backend's declared `modules` and the requirements of its churnctl extra (a library a
  stage uses without importing it by name, such as pyarrow under `pandas.read_parquet`);
- `python`: the interpreter version (pickled or compiled state rarely survives an upgrade).

Parsing every module on every run would cost more than the whole no-op run is allowed, so
per-file results are cached by (mtime, size) and the import-name -> distribution map by the
state of the directories on sys.path; a cache entry is only ever a shortcut to what a fresh
parse gives (tests compare both).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

CACHE_FILE = "code-versions.json"
_FORMAT = 1


@dataclass(frozen=True)
class CodeVersion:
    modules: dict[str, str]  # "churnctl/domain/schema.py" -> sha256 of its source
    distributions: dict[str, str]  # "scikit-learn" -> "1.7.2"
    python: str

    def component(self) -> dict[str, Any]:
        return {"modules": self.modules, "distributions": self.distributions,
                "python": self.python}

    @property
    def digest(self) -> str:
        text = json.dumps(self.component(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class _ParsedModule:
    sha256: str
    imports: list[str]  # absolute dotted names this module imports (candidates)


@dataclass
class _Cache:
    path: Path | None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def open(cls, path: Path | None) -> _Cache:
        if path is None or not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)  # a damaged cache is rebuilt, never trusted
        if data.get("format") != _FORMAT:
            return cls(path)
        return cls(path, data.get("files", {}), data.get("distributions", {}))

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from churnctl.atomic import write_json

        # A read-only workspace still runs; it just parses again next time.
        with contextlib.suppress(OSError):
            write_json(self.path, {"format": _FORMAT, "files": self.files,
                                   "distributions": self.distributions})


def _imports_of(source: bytes, module: str, is_package: bool) -> list[str]:
    """Absolute names a module imports: `import a.b` gives a.b; `from a import b` gives a and
    a.b (b may be a submodule); relative imports are resolved against the module's package."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            if not origin:
                continue
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names if alias.name != "*")
    return sorted(names)


def _parse(path: Path, module: str, cache: _Cache) -> _ParsedModule:
    stat = path.stat()
    stamp = [stat.st_mtime_ns, stat.st_size]
    key = str(path)
    entry = cache.files.get(key)
    if entry and entry.get("stamp") == stamp and entry.get("module") == module:
        return _ParsedModule(entry["sha256"], entry["imports"])
    source = path.read_bytes()
    parsed = _ParsedModule(hashlib.sha256(source).hexdigest(),
                           _imports_of(source, module, path.name == "__init__.py"))
    cache.files[key] = {"stamp": stamp, "module": module, "sha256": parsed.sha256,
                        "imports": parsed.imports}
    cache.dirty = True
    return parsed


def _package_root(top: str) -> Path | None:
    module = sys.modules.get(top)
    if module is None:
        import importlib

        module = importlib.import_module(top)
    origin = getattr(module, "__file__", None)
    return Path(origin).parent if origin else None


def _module_file(root: Path, name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for candidate in (root / relative / "__init__.py", root.joinpath(f"{relative}.py")):
        if candidate.is_file() and candidate != root / ".py":
            return candidate
    return None


def module_closure(entry: str, extra_roots: tuple[str, ...] = (),
                   cache_path: Path | None = None) -> tuple[dict[str, str], set[str]]:
    """(package-relative path -> sha256 of every module reached, third-party top-level names)
    for the import graph of `entry` (and `extra_roots`) inside `entry`'s top-level package."""
    cache = _Cache.open(cache_path)
    try:
        return _closure(entry, extra_roots, cache)
    finally:
        cache.save()


def _closure(entry: str, extra_roots: tuple[str, ...], cache: _Cache,
             ) -> tuple[dict[str, str], set[str]]:
    top = entry.split(".")[0]
    root = _package_root(top)
    if root is None:
        return {}, set()
    stdlib = sys.stdlib_module_names
    seen: dict[str, str] = {}
    third_party: set[str] = set()
    pending = [entry, *extra_roots]
    visited: set[str] = set()
    while pending:
        name = pending.pop()
        if name in visited:
            continue
        visited.add(name)
        head = name.split(".")[0]
        if head != top:
            if head not in stdlib and head != "__future__":
                third_party.add(head)
            continue
        path = _module_file(root, name)
        if path is None:
            continue  # `from churnctl.x import SomeClass`: the candidate x.SomeClass is no module
        parsed = _parse(path, name, cache)
        seen[path.relative_to(root.parent).as_posix()] = parsed.sha256
        parents = name.split(".")
        pending.extend(".".join(parents[:i]) for i in range(1, len(parents)))
        pending.extend(parsed.imports)
    return dict(sorted(seen.items())), third_party


def _path_fingerprint() -> str:
    """Changes when a distribution is installed or removed in a site directory on sys.path
    (installing one creates or deletes its .dist-info there, which changes the mtime). The
    working directory and source folders are left out: runs write to them all the time."""
    stamps = []
    for entry in sys.path:
        if not entry.endswith(("site-packages", "dist-packages")):
            continue
        try:
            stamps.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()


@cache
def _packages_distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _extra_requirements(extra: str | None, seen: set[str] | None = None) -> set[str]:
    """Distribution names that `pip install 'churnctl[extra]'` asks for (churnctl[...]
    references followed), from the installed churnctl's metadata."""
    if extra is None:
        return set()
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen = seen if seen is not None else set()
    if extra in seen:
        return set()
    seen.add(extra)
    try:
        lines = requires("churnctl") or []
    except PackageNotFoundError:
        return set()
    names: set[str] = set()
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
            continue
        if requirement.name == "churnctl":
            for inner in requirement.extras:
                names |= _extra_requirements(inner, seen)
        else:
            names.add(requirement.name)
    return names


def distribution_versions(import_names: set[str], extra: str | None,
                          cache_path: Path | None = None) -> dict[str, str]:
    """Installed versions of the distributions providing `import_names`, plus those of the
    churnctl extra; names that are not installed are left out (the plan reports them)."""
    cache = _Cache.open(cache_path)
    try:
        return _distributions(import_names, extra, cache)
    finally:
        cache.save()


def _distributions(import_names: set[str], extra: str | None, cache: _Cache) -> dict[str, str]:
    fingerprint = _path_fingerprint()
    key = json.dumps([sorted(import_names), extra])
    stored = cache.distributions.get(fingerprint, {})
    if key in stored:
        return dict(stored[key])
    mapping = _packages_distributions()
    wanted = set(_extra_requirements(extra))
    for name in import_names:
        wanted.update(mapping.get(name, []))
    versions = {}
    for dist in sorted(wanted, key=str.lower):
        found = _dist_version(dist)
        if found is not None:
            versions[_canonical(dist)] = found
    cache.distributions = {fingerprint: {**stored, key: versions}}  # drop other fingerprints
    cache.dirty = True
    return dict(sorted(versions.items()))


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def code_version(module: str, declared_modules: tuple[str, ...] = (),
                 extra_roots: tuple[str, ...] = (), extra: str | None = None,
                 cache_dir: Path | None = None) -> CodeVersion:
    """The code version of a backend whose class lives in `module`.

    `extra_roots` are modules of the backend's code that it runs without importing (a script
    run in a subprocess); `declared_modules` the libraries it needs (Backend.modules).
    """
    # One read and at most one write of the cache file per backend.
    cache = _Cache.open(cache_dir / CACHE_FILE if cache_dir is not None else None)
    try:
        modules, third_party = _closure(module, extra_roots, cache)
        third_party |= {name.split(".")[0] for name in declared_modules}
        versions = _distributions(third_party, extra, cache)
    finally:
        cache.save()
    return CodeVersion(modules, versions, platform.python_version())


def backend_code_version(cls: type, cache_dir: Path | None = None) -> CodeVersion:
    """`code_version` of a Backend class: the one function runner, DVC and Kubeflow use."""
    return code_version(cls.__module__, tuple(getattr(cls, "modules", ())),
                        tuple(getattr(cls, "code_modules", ())), getattr(cls, "extra", None),
                        cache_dir)


def describe_change(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two `CodeVersion.component()`s, in words for `plan`."""
    reasons: list[str] = []
    before, after = previous.get("modules", {}), current.get("modules", {})
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        shown = ", ".join(changed[:3]) + (f" (+{len(changed) - 3} more)" if len(changed) > 3
                                          else "")
        reasons.append(f"code changed: {shown}")
    old_d, new_d = previous.get("distributions", {}), current.get("distributions", {})
    for dist in sorted(set(old_d) | set(new_d)):
        if old_d.get(dist) != new_d.get(dist):
            reasons.append(f"{dist} {old_d.get(dist) or 'absent'} -> "
                           f"{new_d.get(dist) or 'absent'}")
    if previous.get("python") != current.get("python"):
        reasons.append(f"Python {previous.get('python')} -> {current.get('python')}")
    return reasons or (["code changed"] if previous != current else [])
