"""The serving package stands on its own: no import of the serve backend, no test scaffolding."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import churnctl.serving

SERVING = Path(churnctl.serving.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_serving_never_imports_the_serve_backend() -> None:
    # The backend imports serving; serving importing the backend back is the cycle.
    offenders = {
        path.name: sorted(m for m in _imported_modules(path) if m.startswith("churnctl.backends"))
        for path in SERVING.glob("*.py")
    }
    assert not {name: mods for name, mods in offenders.items() if mods}


def test_importing_the_app_leaves_the_backend_unloaded() -> None:
    code = (
        "import sys, churnctl.serving.app, churnctl.serving.server\n"
        "print('churnctl.backends.serve_fastapi' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert shown.stdout.strip() == "False"


def test_backend_still_exposes_serve_options() -> None:
    from churnctl.backends.serve_fastapi import FastapiServe, ServeOptions
    from churnctl.serving.options import ServeOptions as Moved

    assert ServeOptions is Moved and FastapiServe.Options is Moved


def test_demo_scaffolding_is_not_in_the_package() -> None:
    assert importlib.util.find_spec("churnctl.serving.demo") is None
    assert not (SERVING / "demo.py").exists()
