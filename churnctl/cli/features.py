"""`churnctl features apply | materialize | get`: the workspace's Feast feature repo
(`feature_repo/`, written by the features.feast stage). Feast is imported only when a command
runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from churnctl.cli.common import JsonOption, WorkspaceOption, console, print_json, workspace_at
from churnctl.errors import UserError
from churnctl.workspace import Workspace

app = typer.Typer(help="The Feast feature store of the workspace (features.feast).",
                  no_args_is_help=True)
IncrementalOption = Annotated[bool, typer.Option(
    "--incremental", help="Start where the last materialization ended (Feast's registry).")]


def _store_artifact(ws: Workspace) -> tuple[Any, dict[str, Any]]:
    from churnctl.feast_store.repo import REPO_DIR
    from churnctl.runs import latest_artifact

    artifact = latest_artifact(ws, "features")
    meta = artifact.meta("feature_store", None) if artifact is not None else None
    if meta is None or not (ws.root / REPO_DIR / "feature_store.yaml").is_file():
        raise UserError(f"no Feast feature repo in {ws.root}; build one with "
                        "`churnctl run --profile v3` (features backend feast)")
    return artifact, meta


@app.command("apply")
def apply_command(workspace: WorkspaceOption = ".") -> None:
    """Register the repo's entities and feature views (feast apply).

    Example: churnctl features apply
    """
    from churnctl.feast_store.repo import REPO_DIR
    from churnctl.feast_store.store import open_store

    ws = workspace_at(workspace)
    _store_artifact(ws)
    open_store(ws.root / REPO_DIR, apply=True)
    console().print(f"applied {ws.root / REPO_DIR}")


@app.command("materialize")
def materialize_command(incremental: IncrementalOption = False,
                        workspace: WorkspaceOption = ".", json_out: JsonOption = False) -> None:
    """Load every user's newest features into the online store (feast materialize).

    Example: churnctl features materialize --incremental
    """
    import pandas as pd

    from churnctl.feast_store.repo import REPO_DIR
    from churnctl.feast_store.store import end_of, materialize, open_store

    ws = workspace_at(workspace)
    _, meta = _store_artifact(ws)
    store = open_store(ws.root / REPO_DIR, apply=True)
    done = materialize(store, end_of(pd.Timestamp(meta["last_day"])),
                       pd.Timestamp(meta["first_day"]).to_pydatetime(), incremental)
    if json_out:
        print_json(done)
        return
    console().print(f"materialized to {meta['last_day']} into {done['online_store']}"
                    + (" (incremental)" if incremental else ""))


@app.command("get")
def get_command(user_ids: Annotated[list[int], typer.Argument(help="user_id values")],
                workspace: WorkspaceOption = ".", json_out: JsonOption = False) -> None:
    """Online features of users, with their feature timestamps (feast get-online-features).

    Example: churnctl features get 42 43 --json
    """
    from churnctl.feast_store.online import OnlineFeatures
    from churnctl.serving.lookup import LookupRefused

    ws = workspace_at(workspace)
    artifact, meta = _store_artifact(ws)
    schema = artifact.meta("feature_schema")
    online = OnlineFeatures(ws, {**meta, "stale_features": "flag"}, schema,
                            artifact.table("latest"), "user_id")
    rows = []
    for user in user_ids:
        try:
            found = online.get(user, online.names)
        except LookupRefused as exc:
            raise UserError(str(exc)) from None
        if found is None:
            raise UserError(f"user_id {user}: no row in the {online.where} online store")
        record, stamp = found
        rows.append({"user_id": user, "as_of": str(stamp), "stale": stamp.stale, **record})
    if json_out:
        print_json(rows)
        return
    for row in rows:
        console().print(f"user {row['user_id']} as of {row['as_of']}"
                        + (" (stale)" if row["stale"] else ""))
        for name in online.names:
            console().print(f"  {name} = {row[name]}")
