"""The scorer's features into the Feast online store, where the features backend made one.

`serve` answers `/predict {"user_id"}` from the Feast online store when the newest features
artifact's `feature_store` meta says a Feast store holds them (features.feast, or
features.spark with `feature_store: feast`; serving/lookup.py); the scorer then writes each
user it updated there too, at each commit (the user's row after its last event, stamped with that
event's time), so `serve` and `churnctl features get` read what the stream just
computed. The windows themselves (daily aggregates, which Feast has no view for) stay in the
embedded store with the offsets they include; Feast gets the features, like materialize.

Rows are staged per batch and written at the scorer's commit (every batch, or every
--commit-interval-ms), before it: a scorer killed in between writes the same rows again on
restart (the same state gives the same features), so the online store never misses an update
whose offsets were committed. Feast's SQLite store upserts one row per user and feature, so
the write costs per distinct user, not per event: a longer interval amortizes it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import numpy as np

from churnctl.errors import UserError
from churnctl.feast_store.repo import (
    ACTIVITY_VIEW,
    JOIN_KEY,
    PROFILE_NUMERIC,
    PROFILE_VIEW,
    REPO_DIR,
)
from churnctl.feast_store.repo import TIMESTAMP as FEAST_TIMESTAMP
from churnctl.streaming.online_state import Features
from churnctl.workspace import Workspace


class FeastSink:
    def __init__(self, store: Any, numeric: list[str], categorical: list[str]) -> None:
        from churnctl.feast_store.store import public_connection

        self.store = store
        profile = set(PROFILE_NUMERIC) | set(categorical)
        names = [*numeric, *categorical]
        self.views = [(ACTIVITY_VIEW, [n for n in names if n not in profile]),
                      (PROFILE_VIEW, [n for n in names if n in profile])]
        self.where = public_connection(store.config.online_store)
        self.staged: list[Any] = []  # DataFrames of the batches since the last flush
        self.rows_written = 0

    def stage(self, events: list[dict[str, Any]], features: Features) -> None:
        """Keep each user's features after its last event of the batch, for flush."""
        import pandas as pd

        last: dict[int, int] = {}
        for i, event in enumerate(events):
            last[event["user_id"]] = i
        chosen = np.fromiter(last.values(), np.int64, len(last))
        stamps = pd.to_datetime([events[i]["event_time"] for i in chosen.tolist()])
        stamps = stamps.tz_localize(UTC) if stamps.tz is None else stamps.tz_convert(UTC)
        names = [name for _view, view_names in self.views for name in view_names]
        try:
            columns = {name: _take(features.columns[name], chosen) for name in names}
        except KeyError as exc:
            raise UserError(f"the Feast feature views name {exc} which the scorer does not "
                            "compute; run `churnctl run` again to rebuild the repo") from None
        self.staged.append(pd.DataFrame({JOIN_KEY: np.fromiter(last, np.int64, len(last)),
                                         FEAST_TIMESTAMP: stamps, **columns}))

    def flush(self) -> None:
        """Write the staged rows, the newest per user, one call per feature view."""
        import pandas as pd

        if not self.staged:
            return
        frame = pd.concat(self.staged, ignore_index=True) if len(self.staged) > 1 \
            else self.staged[0]
        frame = frame.drop_duplicates(JOIN_KEY, keep="last")
        try:
            for view, names in self.views:
                self.store.write_to_online_store(view, frame[[JOIN_KEY, FEAST_TIMESTAMP,
                                                              *names]])
        except Exception as exc:  # the store is down: nothing of these batches is committed
            text = str(exc).strip().splitlines()
            raise UserError(f"writing online features to Feast ({self.where}) failed: "
                            f"{type(exc).__name__}: {text[0] if text else ''}; nothing since "
                            "the last commit was committed: restart the scorer when the store "
                            "is back") from None
        self.staged.clear()
        self.rows_written += len(frame)


def _take(values: Any, chosen: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[chosen]
    return [values[i] for i in chosen.tolist()]


def feast_sink_for(workspace: Workspace) -> FeastSink | None:
    """A sink into the workspace's Feast online store when the newest features artifact
    declares a Feast store (features.feast's, or features.spark's with `feature_store: feast`:
    what `serve` reads by user_id), else None (the embedded store)."""
    from churnctl.runs import latest_artifact

    artifact = latest_artifact(workspace, "features")
    meta = artifact.meta("feature_store", None) if artifact is not None else None
    if meta is None:
        return None
    repo = workspace.root / meta.get("repo", REPO_DIR)
    if not (repo / "feature_store.yaml").is_file():
        raise UserError(f"the newest features artifact was made by Feast but {repo} has no "
                        "feature_store.yaml; run `churnctl run` again to write the repo")
    from churnctl.feast_store.store import open_store

    schema = artifact.meta("feature_schema")
    return FeastSink(open_store(repo), list(schema["numeric"]), list(schema["categorical"]))
