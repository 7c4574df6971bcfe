"""Settings precedence: flag > CHURNCTL_* environment > churnctl.yaml > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnctl.errors import UserError
from churnctl.settings import resolve_profile_name
from churnctl.workspace import Workspace


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path)
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    assert resolve_profile_name(None, ws) == "v1"
    (tmp_path / "churnctl.yaml").write_text("profile: v2\n")
    assert resolve_profile_name(None, ws) == "v2"
    monkeypatch.setenv("CHURNCTL_PROFILE", "v3")
    assert resolve_profile_name(None, ws) == "v3"
    assert resolve_profile_name("v4", ws) == "v4"


def test_bad_project_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    (tmp_path / "churnctl.yaml").write_text("- just\n- a list\n")
    with pytest.raises(UserError, match=r"churnctl\.yaml"):
        resolve_profile_name(None, Workspace(tmp_path))


def test_project_file_sets_default_profile_for_plan(cli, tmp_path: Path) -> None:
    (tmp_path / "churnctl.yaml").write_text("profile: v3\n")
    result = cli("plan", "--json")
    assert '"profile": "v3"' in result.stdout
