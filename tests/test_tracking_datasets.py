"""MLflow datasets of the features' train/test tables, whether a table is one Parquet file
(features.pandas) or a directory of parts (features.spark: `train.parquet/part-*.parquet`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnctl.hashing import file_sha256
from churnctl.stages import ArtifactRef

pytest.importorskip("mlflow")


def _features(root: Path, parted: bool) -> ArtifactRef:
    frame = pd.DataFrame({"user_id": range(1, 9), "events_7d": [float(i) for i in range(8)],
                          "as_of": pd.Timestamp("2025-03-01"), "churned": [0, 1] * 4})
    tables = {}
    for name in ("train", "test"):
        if parted:
            (root / f"{name}.parquet").mkdir(parents=True)
            frame[:5].to_parquet(root / f"{name}.parquet" / "part-00000.parquet", index=False)
            frame[5:].to_parquet(root / f"{name}.parquet" / "part-00001.parquet", index=False)
        else:
            root.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(root / f"{name}.parquet", index=False)
        tables[name] = {"path": f"{name}.parquet", "columns": None}
    files = {p.relative_to(root).as_posix(): file_sha256(p)
             for p in sorted(root.rglob("*")) if p.is_file()}
    return ArtifactRef("features", "k", root, files, contents={"tables": tables})


@pytest.mark.parametrize("parted", [False, True], ids=["file", "part-directory"])
def test_train_and_test_are_logged_with_rows_schema_and_digest(tmp_path: Path,
                                                               parted: bool) -> None:
    import mlflow

    from churnctl.tracking.mlflow_tracker import _log_datasets, table_digest

    features = _features(tmp_path / "features", parted)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            example = _log_datasets(features)
        logged = mlflow.MlflowClient(uri).get_run(run.info.run_id).inputs.dataset_inputs
    finally:
        mlflow.set_tracking_uri(None)
    assert {d.dataset.name for d in logged} == {"features-train", "features-test"}
    assert all(next(t.value for t in d.tags if t.key == "rows") == "8" for d in logged)
    assert all('"events_7d"' in d.dataset.schema for d in logged)
    digest = table_digest(features, features.table("train"))
    assert len(digest) == 64
    assert {d.dataset.digest for d in logged if d.dataset.name == "features-train"} == {
        digest[:12]}
    assert example is not None and list(example["user_id"]) == [1, 2, 3, 4, 5]


def test_a_part_directorys_digest_changes_with_any_part(tmp_path: Path) -> None:
    from churnctl.tracking.mlflow_tracker import table_digest

    features = _features(tmp_path / "features", parted=True)
    before = table_digest(features, features.table("train"))
    changed = dict(features.files, **{"train.parquet/part-00001.parquet": "0" * 64})
    after = table_digest(ArtifactRef("features", "k", features.path, changed,
                                     contents=features.contents), features.table("train"))
    assert before != after
