"""The latest feature snapshot per user, for `POST /predict {"user_id": ...}`.

Read from the newest features artifact (`latest.parquet`) into plain arrays once; a look-up is
a dict hit plus one value per column, no pandas per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from churnctl.runs import latest_artifact
from churnctl.workspace import Workspace

LATEST = "latest"  # the features table every user's newest snapshot is in


class LookupRefused(Exception):
    """A feature source that has the user but will not answer (a stale online row: 409; the
    online store down: 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FeatureTable:
    """Every user's newest feature row, held as two row-major blocks (numbers as float64,
    categories as Python objects) so that a look-up converts a user's row in two C calls;
    `columns` are views into the blocks, for the batch path's column-wise reads."""

    def __init__(self, path: Path, id_column: str, index: dict[str, int],
                 numbers: dict[str, np.ndarray], others: dict[str, np.ndarray],
                 as_of: list[str | None]) -> None:
        self.path, self.id_column, self.index, self.as_of = path, id_column, index, as_of
        rows = len(as_of)
        self._numbers = (np.column_stack(list(numbers.values())) if numbers
                         else np.empty((rows, 0), np.float64))
        self._others = (np.column_stack(list(others.values())) if others
                        else np.empty((rows, 0), object))
        self._position = {name: ("n", j) for j, name in enumerate(numbers)} | {
            name: ("o", j) for j, name in enumerate(others)}
        self.columns: dict[str, np.ndarray] = {
            name: (self._numbers if kind == "n" else self._others)[:, j]
            for name, (kind, j) in self._position.items()}
        self._plans: dict[tuple[str, ...], tuple[Any, ...]] = {}

    def close(self) -> None:
        """Nothing runs in the background of a table (a look-up source's interface: the
        Feast online source stops its Redis listener here)."""

    @classmethod
    def read(cls, path: Path, id_column: str = "user_id") -> FeatureTable:
        import pandas as pd

        frame = pd.read_parquet(path)
        if id_column not in frame.columns:
            raise ValueError(f"{path} has no {id_column!r} column")
        ids = [str(value) for value in frame[id_column].tolist()]
        numbers, others = {}, {}
        for name in frame.columns:
            if name in (id_column, "as_of"):
                continue
            column = frame[name]
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                numbers[name] = column.to_numpy(np.float64, na_value=np.nan)
            else:  # categories as Python objects, missing as None
                others[name] = np.array(column.astype(object).where(column.notna(), None))
        as_of = ([None] * len(frame) if "as_of" not in frame.columns
                 else [None if pd.isna(v) else str(v)[:10] for v in frame["as_of"].tolist()])
        # The newest row wins if an id repeats (dict keeps the last assignment).
        return cls(path, id_column, {uid: i for i, uid in enumerate(ids)}, numbers, others,
                   as_of)

    def __len__(self) -> int:
        return len(self.index)

    def missing_columns(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if name not in self._position]

    def _plan(self, names: tuple[str, ...]) -> tuple[Any, ...]:
        """Where `names` sit in the two blocks (computed once per model's feature list)."""
        plan = self._plans.get(names)
        if plan is None:
            numeric = [name for name in names if self._position[name][0] == "n"]
            other = [name for name in names if self._position[name][0] == "o"]
            plan = self._plans[names] = (
                numeric, np.array([self._position[n][1] for n in numeric], dtype=np.intp),
                other, np.array([self._position[n][1] for n in other], dtype=np.intp))
        return plan

    def get(self, user_id: str | int, names: tuple[str, ...]
            ) -> tuple[dict[str, Any], str | None] | None:
        """The user's feature record (Python floats and objects) and snapshot date, or None
        for an unknown id."""
        row = self.index.get(str(user_id))
        if row is None:
            return None
        numeric, numeric_at, other, other_at = self._plan(names)
        record = dict(zip(numeric, self._numbers[row, numeric_at].tolist(), strict=True))
        record.update(zip(other, self._others[row, other_at].tolist(), strict=True))
        return record, self.as_of[row]


def latest_features_path(workspace: Workspace) -> Path | None:
    """The `latest` table (every user's newest snapshot) of the newest features artifact."""
    artifact = latest_artifact(workspace, "features")
    if artifact is None or not artifact.has_table(LATEST):
        return None
    return artifact.table(LATEST)


def _feature_store(path: Path) -> tuple[Any, dict[str, Any]] | None:
    """(artifact, its `feature_store` meta) when the Feast backend made the features artifact
    `path` is in, else None."""
    from churnctl.artifacts import MANIFEST, ArtifactRef

    if not (path.parent / MANIFEST).is_file():
        return None
    artifact = ArtifactRef.load(path.parent)
    store = artifact.meta("feature_store", None)
    return None if store is None else (artifact, store)


def open_feature_source(workspace: Workspace, path: Path, id_column: str,
                        fast: bool = True, cache_users: int | None = None) -> Any:
    """The look-up source of the features artifact `path` is in: its Feast online store when
    the features backend made one (v3), else the `latest` table itself. `fast`: one-user
    look-ups by the direct read, verified against Feast's now (what serving needs; reading
    every user at once, as batch scoring does, goes through Feast's online_read);
    `cache_users`: how many decoded online rows a thread keeps (serve option
    online_cache_users)."""
    found = _feature_store(path)
    if found is None:
        return FeatureTable.read(path, id_column)
    from churnctl.feast_store.online import OnlineFeatures

    artifact, store = found
    return OnlineFeatures(workspace, store, artifact.meta("feature_schema"), path, id_column,
                          fast=fast, cache_users=cache_users)


def read_latest_frame(workspace: Workspace, path: Path, id_column: str = "user_id"
                      ) -> tuple[Any, str]:
    """Every user's newest features as a DataFrame, read through the features backend that
    made them, and where they came from: the Feast online store (v3; what `/predict` serves),
    else the table itself. Batch scoring and drift monitoring read here, never around it."""
    import pandas as pd

    if _feature_store(path) is None:
        return pd.read_parquet(path), str(path)
    online = open_feature_source(workspace, path, id_column, fast=False)
    return online.frame(), f"Feast online store ({online.connection})"
