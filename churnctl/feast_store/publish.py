"""After the features artifact is committed: the workspace's feature repo and online store.

Idempotent, run even when the stage was cached (Backend.publish): the repo files are rewritten
only where they differ, the offline source is copied in only when its content changed, and
materialization is skipped when the online store already holds this source up to its end.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from churnctl.atomic import atomic_path, write_json
from churnctl.feast_store.reachable import check_redis
from churnctl.feast_store.repo import REPO_DIR, SOURCE_FILE, state_path, write_repo
from churnctl.stages import ArtifactRef
from churnctl.workspace import Workspace

STATE_FILE = "materialized.json"


def _online_key(opts: Any) -> str:
    return (f"redis:{opts.redis_connection}" if opts.online_store == "redis" else "sqlite")


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
    digest = artifact.files[f"{SOURCE_TABLE}.parquet"]
    target = repo / SOURCE_FILE
    state_file = state_path(repo, spec) / STATE_FILE
    state_file.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(state_file.read_text()) if state_file.is_file() else {}
    online = _online_key(opts)
    same_store = previous.get("online") == online
    registry = state_path(repo, spec) / "registry.db"
    if (same_store and previous.get("source") == digest and not changed and target.is_file()
            and registry.is_file()):
        # Nothing to do, and Feast (~10 s to import) is not even imported.
        return {"feature_repo": str(repo), "materialized": "up to date"}
    if previous.get("source") != digest or not target.is_file():
        with atomic_path(target) as tmp:
            shutil.copyfile(artifact.table(SOURCE_TABLE), tmp)
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
