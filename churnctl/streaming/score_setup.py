"""What `stream score` needs before its loop: the production model (followed like `serve`),
the users rows in the online store, the Feast online store where the features backend made
one, and a clean stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churnctl.errors import DataError, UserError
from churnctl.streaming.online_state import OnlineStore
from churnctl.streaming.scorer import ScoreOptions, StreamScorer, store_path
from churnctl.workspace import Workspace


def model_holder(workspace: Workspace, profile: str | None, batch: int,
                 reload_seconds: float) -> Any:
    """The serve backend's registry (local, or the MLflow alias from v2 on), loaded now and
    polled every `reload_seconds` like `serve` does."""
    from churnctl.cli.serve import _serve_backend
    from churnctl.serving.model_holder import ModelHolder
    from churnctl.serving.sources import model_registry_for

    _backend, options = _serve_backend(profile, workspace, {})
    holder = ModelHolder(workspace, max_batch=batch,
                         registry=model_registry_for(workspace, options))
    holder.refresh()
    if holder.current is None:
        raise UserError(holder.not_ready_reason())
    holder.start(reload_seconds)
    return holder


def users_table(workspace: Workspace, users_file: Path | None) -> Any:
    """--users, else the users table of the latest ingest artifact."""
    from churnctl.domain.schema import USERS
    from churnctl.domain.tables import conform, read_raw

    if users_file is not None:
        frame, _ = conform(read_raw(users_file), USERS, users_file)
        return frame
    from churnctl.runner import _latest_committed

    ingest = _latest_committed(workspace, "ingest")
    if ingest is None or not ingest.has_table("users"):
        raise DataError(f"no ingest output with a users table in {workspace.root}; run "
                        "`churnctl run` first or pass --users FILE")
    import pandas as pd

    return pd.read_parquet(ingest.table("users"))


def run_scorer(options: ScoreOptions, workspace: Workspace, profile: str | None,
               users_file: Path | None, log: Any = print) -> dict[str, int]:
    from churnctl.streaming.kafka_client import topic_partitions

    topic_partitions(options.bootstrap, options.topic)  # the broker and topic, before the model
    from churnctl.streaming.feast_sink import feast_sink_for

    holder = model_holder(workspace, profile, options.batch, options.reload_seconds)
    store = OnlineStore(store_path(workspace.state, options.group))
    try:
        count = store.load_users(users_table(workspace, users_file))
        sink = feast_sink_for(workspace)
        where = f"; features also to the Feast online store ({sink.where})" if sink else ""
        log(f"scoring {options.topic!r} -> {options.output_topic!r} with model "
            f"v{holder.current.version}; {count:,} users in the online store{where}")
        scorer = StreamScorer(options, store, holder, log=log, sink=sink)
        try:
            return scorer.run()
        except KeyboardInterrupt:  # Ctrl-C: the current batch was committed or not at all
            return scorer.totals
    finally:
        holder.stop()
        store.close()
