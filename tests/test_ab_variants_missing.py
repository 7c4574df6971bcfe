"""`churnctl serve` on fastapi-ab names each variant whose alias holds no model yet (after a
first run: the challenger), since /ready answers 503 until every variant has one."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnctl.ab.aliases import LocalAliases
from churnctl.backends.serve_fastapi_ab import AbServeOptions, FastapiAbServe
from churnctl.cli.main import app
from churnctl.domain.model_registry import ModelRegistry
from churnctl.workspace import Workspace
from tests.serving_demo import make_demo_workspace


@pytest.fixture
def demo(tmp_path: Path) -> Workspace:
    return make_demo_workspace(tmp_path / "ws", users=300)


def _serve(demo: Workspace, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(FastapiAbServe, "serve", lambda self, workspace, options: None)
    result = CliRunner().invoke(app, ["serve", "-w", str(demo.root), "--profile", "v4",
                                      "--port", "0"])
    assert result.exit_code == 0, result.output
    return " ".join(result.stderr.split())


def test_serve_names_the_variant_without_a_model_until_its_alias_is_set(
        demo: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    options = AbServeOptions()
    assert FastapiAbServe().missing_variants(demo, options) == ["challenger"]
    text = _serve(demo, monkeypatch)
    assert "model v1" in text
    assert ("variant challenger: no model holds alias 'challenger' yet: /ready answers 503 "
            "until `churnctl ab alias challenger VERSION`") in text
    assert "variant champion" not in text  # the production model: named above

    LocalAliases(ModelRegistry(demo.registry)).set("challenger", 1)
    assert FastapiAbServe().missing_variants(demo, options) == []
    assert "no model holds alias" not in _serve(demo, monkeypatch)
