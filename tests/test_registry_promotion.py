"""The registry of record: whole versions, numbers never reused, checked loads; the one
promotion rule, which keeps production when it cannot compare."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnctl.domain.model_registry import VERSION_FILE, ModelRegistry
from churnctl.errors import UserError
from churnctl.promotion import decide
from churnctl.workspace import Workspace


def _registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(Workspace(tmp_path).ensure().registry)


def _file(tmp_path: Path, content: bytes, name: str = "model.skops") -> Path:
    folder = tmp_path / "models" / content.hex()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


def _register(registry: ModelRegistry, path: Path, artifact: str, promote: bool):
    return registry.register(path, artifact, "logistic_regression", {"pr_auc": 0.5}, [],
                             promote=promote, decision="test")


def test_versions_record_the_model_hash_and_describe_themselves(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    entry = _register(registry, _file(tmp_path, b"model one"), "a1", True)
    folder = registry.root / "v1"
    assert json.loads((folder / VERSION_FILE).read_text())["sha256"] == entry.sha256
    assert entry.sha256 == __import__("hashlib").sha256(b"model one").hexdigest()
    assert _register(registry, _file(tmp_path, b"model one"), "a1", True) == entry  # idempotent


def test_an_orphan_directory_is_adopted_and_its_number_never_reused(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry, _file(tmp_path, b"first"), "a1", True)
    # A crash after v2/ committed but before the index named it:
    index = registry.index_path.read_text()
    second = _register(registry, _file(tmp_path, b"second"), "a2", True)
    registry.index_path.write_text(index)
    assert [v.version for v in registry.versions()] == [1, 2]
    assert registry.production().version == 2  # the interrupted promotion completes
    assert registry.get(2).sha256 == second.sha256
    third = _register(registry, _file(tmp_path, b"third"), "a3", False)
    assert third.version == 3
    assert (registry.root / "v3" / "model.skops").read_bytes() == b"third"
    assert (registry.root / "v2" / "model.skops").read_bytes() == b"second"


def test_a_half_copied_version_directory_is_never_seen(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry, _file(tmp_path, b"first"), "a1", True)
    leftover = registry.root / ".v2.pid999.abc.tmp"
    leftover.mkdir()
    (leftover / "model.skops").write_bytes(b"half")
    assert [v.version for v in registry.versions()] == [1]
    entry = _register(registry, _file(tmp_path, b"second"), "a2", False)
    assert entry.version == 2
    assert (registry.root / "v2" / "model.skops").read_bytes() == b"second"


def test_a_directory_without_its_description_gets_no_reused_number(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    (registry.root / "v1").mkdir(parents=True)
    (registry.root / "v1" / "model.pkl").write_bytes(b"foreign")  # planted, no version.json
    entry = _register(registry, _file(tmp_path, b"ours"), "a1", True)
    assert entry.version == 2
    assert [v.version for v in registry.versions()] == [2]


def test_a_tampered_model_file_is_refused_before_loading(tmp_path: Path,
                                                         tiny_model_file: Path) -> None:
    registry = _registry(tmp_path)
    entry = _register(registry, tiny_model_file, "a1", True)
    model = registry.load_model(entry.version)
    assert model.algorithm == "logistic_regression"
    path = registry.model_path(entry.version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        registry.load_model(entry.version)
    shutil.copy(tiny_model_file, path)
    os.utime(path)
    assert registry.load_model(entry.version).algorithm == "logistic_regression"


@pytest.fixture
def tiny_model_file(tmp_path: Path) -> Path:
    import numpy as np
    import pandas as pd

    from churnctl.domain.model import MODEL_FILE, ChurnModel, FeatureSpec
    from churnctl.domain.modeling import build_estimator

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (frame["a"] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    estimator = build_estimator("logistic_regression", ["a", "b"], [], 0)
    estimator.fit(frame, y)
    model = ChurnModel(estimator, [FeatureSpec("a", "numeric"), FeatureSpec("b", "numeric")],
                       "logistic_regression")
    path = tmp_path / "trained" / MODEL_FILE
    path.parent.mkdir()
    model.save(path)
    return path


# The promotion rule.

def test_first_model_is_promoted() -> None:
    assert decide("pr_auc", 0.005, {"pr_auc": 0.1}, None, None).promote


@given(ours=st.floats(0, 1), theirs=st.floats(0, 1), margin=st.floats(0, 0.1))
def test_promotes_exactly_when_better_by_the_margin(ours: float, theirs: float,
                                                    margin: float) -> None:
    decision = decide("pr_auc", margin, {"pr_auc": ours}, {"pr_auc": theirs}, 3)
    assert decision.promote == (ours - theirs >= margin)
    assert decision.compared
    brier = decide("brier", margin, {"brier": ours}, {"brier": theirs}, 3)
    assert brier.promote == (theirs - ours >= margin)  # lower is better


def test_a_gate_that_cannot_compare_keeps_production() -> None:
    decision = decide("pr_auc", 0.005, {"pr_auc": 0.9}, None, 4,
                      cannot_compare="production v4 needs 3 column(s) this data lacks")
    assert not decision.promote
    assert "kept production v4: cannot compare" in decision.reason
    assert "--promote" in decision.reason
    missing = decide("pr_auc", 0.005, {"pr_auc": 0.9}, {"roc_auc": 0.5}, 4)
    assert not missing.promote and "production has no pr_auc" in missing.reason
    nan = decide("pr_auc", 0.005, {"pr_auc": float("nan")}, {"pr_auc": 0.5}, 4)
    assert not nan.promote


def test_only_an_explicit_override_promotes_without_a_comparison() -> None:
    forced = decide("pr_auc", 0.005, {"pr_auc": 0.1}, None, 4, cannot_compare="schema changed",
                    override=True)
    assert forced.promote and forced.overridden and not forced.compared
    worse = decide("pr_auc", 0.005, {"pr_auc": 0.1}, {"pr_auc": 0.9}, 4, override=True)
    assert worse.promote and worse.overridden
    better = decide("pr_auc", 0.005, {"pr_auc": 0.95}, {"pr_auc": 0.9}, 4, override=True)
    assert better.promote and not better.overridden
