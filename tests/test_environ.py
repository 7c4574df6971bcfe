"""scoped_environ puts the environment back, also what the block changed or raised over."""

from __future__ import annotations

import os

import pytest

from churnctl.environ import scoped_environ


def test_changes_last_for_the_block_and_everything_named_is_put_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNCTL_T_SET", "before")
    monkeypatch.setenv("CHURNCTL_T_GONE", "before")
    monkeypatch.delenv("CHURNCTL_T_NEW", raising=False)
    monkeypatch.setenv("CHURNCTL_T_KEPT", "before")
    with pytest.raises(RuntimeError), scoped_environ(
            {"CHURNCTL_T_SET": "during", "CHURNCTL_T_GONE": None, "CHURNCTL_T_NEW": "during"},
            kept=["CHURNCTL_T_KEPT"]):
        assert os.environ["CHURNCTL_T_SET"] == "during" and "CHURNCTL_T_GONE" not in os.environ
        assert os.environ["CHURNCTL_T_NEW"] == "during"
        os.environ["CHURNCTL_T_KEPT"] = "changed by the block"
        raise RuntimeError
    assert os.environ["CHURNCTL_T_SET"] == "before" and os.environ["CHURNCTL_T_GONE"] == "before"
    assert "CHURNCTL_T_NEW" not in os.environ and os.environ["CHURNCTL_T_KEPT"] == "before"
