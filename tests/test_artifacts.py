"""Artifacts of any shape: nested trees hashed whole, declared contents, damage detected,
fsync before rename, and a forced rerun that keeps the old tree until the new one commits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from churnctl import atomic
from churnctl.artifacts import (
    MANIFEST,
    ArtifactRef,
    Contents,
    Table,
    declared_contents,
    tree_files,
)
from churnctl.errors import UserError


def _commit(folder: Path, contents: Contents = Contents()) -> ArtifactRef:
    files, sizes = tree_files(folder)
    (folder / MANIFEST).write_text(json.dumps({
        "stage": "features", "key": "k" * 64, "files": files, "sizes": sizes,
        "contents": declared_contents(folder, contents, files, "features"), "uri": contents.uri,
    }))
    return ArtifactRef.load(folder)


def _tree(root: Path) -> Path:
    (root / "parts" / "day=1").mkdir(parents=True)
    (root / "parts" / "day=1" / "part-0.bin").write_bytes(b"abc")
    (root / "top.txt").write_text("top")
    return root


def test_every_nested_file_is_in_the_content_hash(tmp_path: Path) -> None:
    ref = _commit(_tree(tmp_path / "a"))
    assert set(ref.files) == {"parts/day=1/part-0.bin", "top.txt"}
    other = _tree(tmp_path / "b")
    (other / "parts" / "day=1" / "part-0.bin").write_bytes(b"abd")
    assert _commit(other).content_hash != ref.content_hash
    renamed = _tree(tmp_path / "c")
    (renamed / "parts" / "day=1" / "part-0.bin").rename(renamed / "parts" / "day=1" / "p.bin")
    assert _commit(renamed).content_hash != ref.content_hash


def test_declared_tables_models_and_meta_are_asked_for_by_name(tmp_path: Path) -> None:
    import pandas as pd

    root = _tree(tmp_path / "a")
    pd.DataFrame({"user_id": [1, 2], "x": [0.5, 1.5]}).to_parquet(root / "train.parquet")
    ref = _commit(root, Contents(tables={"train": "train.parquet", "parts": Table("parts")},
                                 models={"model": "top.txt"}, meta={"feature_schema": {"id": 1}}))
    assert ref.table("train") == root / "train.parquet"
    assert ref.columns("train") == {"user_id": "int64", "x": "double"}
    assert ref.table("parts").is_dir()
    assert ref.model() == root / "top.txt"
    assert ref.meta("feature_schema") == {"id": 1}
    assert ref.meta("table_plan", None) is None
    with pytest.raises(UserError, match=r"has no table 'test' .*it has: parts, train"):
        ref.table("test")


def test_a_declared_path_that_was_not_written_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    with pytest.raises(UserError, match=r"declared table 'train' 'train\.parquet' is not in"):
        _commit(root, Contents(tables={"train": "train.parquet"}))


def test_a_uri_artifact_hashes_its_uri(tmp_path: Path) -> None:
    local = _commit(_tree(tmp_path / "a"))
    remote = _commit(_tree(tmp_path / "b"), Contents(uri="s3://bucket/features/v1"))
    assert remote.uri == "s3://bucket/features/v1"
    assert local.uri.startswith("file://")
    assert remote.content_hash != local.content_hash


def test_deleted_truncated_and_edited_files_are_detected(tmp_path: Path) -> None:
    ref = _commit(_tree(tmp_path / "a"))
    assert ref.missing_files() == [] and ref.changed_files() == []
    part = ref.path / "parts" / "day=1" / "part-0.bin"
    part.write_bytes(b"xyz")  # same size: only re-hashing (run --verify) sees it
    assert ref.missing_files() == []
    assert ref.changed_files() == ["parts/day=1/part-0.bin"]
    part.write_bytes(b"x")
    assert ref.missing_files() == ["parts/day=1/part-0.bin (size 1, recorded 3)"]
    part.unlink()
    assert ref.missing_files() == ["parts/day=1/part-0.bin (missing)"]


def test_commit_fsyncs_every_file_and_directory_before_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = atomic._fsync, os.replace
    monkeypatch.setattr(atomic, "_fsync", lambda p: (events.append(("fsync", Path(p).name)),
                                                     real_fsync(p)))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append(("rename", "")),
                                                            real_replace(a, b)))
    with atomic.atomic_dir(tmp_path / "target") as tmp:
        _tree(tmp)
    rename = events.index(("rename", ""))
    synced = {name for kind, name in events[:rename] if kind == "fsync"}
    assert {"part-0.bin", "top.txt", "day=1", "parts"} <= synced
    assert ("fsync", tmp_path.name) in events[rename:]  # the parent, for the rename itself


def test_forced_replace_keeps_the_old_tree_until_the_new_one_commits(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "v").write_text("old")
    with atomic.atomic_dir(target, replace=True) as tmp:
        (tmp / "v").write_text("new")
        assert (target / "v").read_text() == "old"  # still readable while the new one is built
    assert (target / "v").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]  # no old tree left behind
    with pytest.raises(RuntimeError), atomic.atomic_dir(target, replace=True) as tmp:
        (tmp / "v").write_text("broken")
        raise RuntimeError("the stage failed")
    assert (target / "v").read_text() == "new"  # a failed rerun leaves the committed tree


def test_forced_replace_without_an_atomic_swap(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "target"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "v").write_text("old")
    with atomic.atomic_dir(target, replace=True) as tmp:
        (tmp / "v").write_text("new")
    assert (target / "v").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]
