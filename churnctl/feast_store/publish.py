"""After the features artifact is committed: the workspace's feature repo and online store.

Idempotent, run even when the stage was cached (Backend.publish): the repo files are rewritten
only where they differ, the offline source is copied in only when its content changed, and
materialization is skipped when the online store already holds this source up to its end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from churnctl.atomic import atomic_path, write_json
from churnctl.feast_store.reachable import check_redis
from churnctl.feast_store.repo import REPO_DIR, SOURCE_FILE, state_path, write_repo
from churnctl.hashing import value_sha256
from churnctl.stages import ArtifactRef
from churnctl.workspace import Workspace

STATE_FILE = "materialized.json"


def _online_key(opts: Any) -> str:
    return (f"redis:{opts.redis_connection}" if opts.online_store == "redis" else "sqlite")


def source_digest(files: dict[str, str], name: str) -> str:
    """The offline source's content digest: its file's (features.feast), or that of its part
    files (a directory, as Spark writes it)."""
    if name in files:
        return files[name]
    return value_sha256({path: sha for path, sha in files.items()
                         if path.startswith(name + "/")})


def copy_source(source: Path, target: Path) -> None:
    """Copy the source (a file or a part-directory; Feast's FileSource reads either) over
    `target`, whichever of the two it was. A directory is copied beside it, then swapped in:
    a copy killed midway is never read, and publish copies again (the state file is written
    only after materialize)."""
    if source.is_file():
        if target.is_dir():
            shutil.rmtree(target)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return
    fresh = target.with_name(f".{target.name}.new")
    old = target.with_name(f".{target.name}.old")
    for leftover in (fresh, old):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        leftover.unlink(missing_ok=True)
    shutil.copytree(source, fresh)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    if old.is_dir():
        shutil.rmtree(old)
    old.unlink(missing_ok=True)


def publish_store(workspace: Workspace, opts: Any, artifact: ArtifactRef, log: Any
                  ) -> dict[str, Any]:
    import pandas as pd

    from churnctl.backends.features_feast import SOURCE_TABLE, repo_spec
    from churnctl.feast_store import store as S

    check_redis(opts)
    schema = artifact.meta("feature_schema")
    spec = repo_spec(opts, schema["numeric"])
    repo = workspace.root / REPO_DIR
    changed = write_repo(repo, spec)
    digest = source_digest(artifact.files, f"{SOURCE_TABLE}.parquet")
    target = repo / SOURCE_FILE
    state_file = state_path(repo, spec) / STATE_FILE
    state_file.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(state_file.read_text()) if state_file.is_file() else {}
    online = _online_key(opts)
    same_store = previous.get("online") == online
    registry = state_path(repo, spec) / "registry.db"
    if (same_store and previous.get("source") == digest and not changed and target.exists()
            and registry.is_file()):
        # Nothing to do, and Feast (~10 s to import) is not even imported.
        return {"feature_repo": str(repo), "materialized": "up to date"}
    if previous.get("source") != digest or not target.exists():
        copy_source(artifact.table(SOURCE_TABLE), target)
    # `feast apply` only when the definitions may differ from the registry's: a new source file
    # of the same repo changes no definition (apply re-reads both files and diffs the registry).
    store = S.open_store(repo, apply=bool(changed) or not registry.is_file())
    stored = artifact.meta("feature_store")
    first = pd.Timestamp(stored["first_day"])
    end = S.end_of(pd.Timestamp(stored["last_day"]))
    incremental = same_store and previous.get("end", "") < end.isoformat() and bool(previous)
    result = S.materialize(store, end, first.to_pydatetime(), incremental)
    write_json(state_file, {"source": digest, "online": online, "end": end.isoformat()})
    how = "incrementally" if incremental else "from " + str(first.date())
    log(f"features: materialized {how} to {stored['last_day']} into {opts.online_store}")
    return {"feature_repo": str(repo), "materialized": result}
