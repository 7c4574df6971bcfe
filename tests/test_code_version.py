"""The code version of a stage comes from its real import graph, library versions and Python."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from churnctl import code_version as cv


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway package `fakepkg`: a backend module whose imports reach other modules only
    inside a function, by relative import and through a parent package."""
    root = tmp_path / "src" / "fakepkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "backend.py": """
            import json

            def run():
                from fakepkg.sub import helpers
                from . import direct
                import numpy
                return helpers, direct, json, numpy
        """,
        "direct.py": "VALUE = 1\n",
        "sub/__init__.py": "",
        "sub/helpers.py": "from ..deep import thing\n",
        "deep.py": "thing = 2\n",
        "unused.py": "import pandas\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(root.parent))
    for name in [m for m in sys.modules if m == "fakepkg" or m.startswith("fakepkg.")]:
        monkeypatch.delitem(sys.modules, name)
    return root


def test_closure_follows_function_level_relative_and_parent_imports(package: Path) -> None:
    modules, third_party = cv.module_closure("fakepkg.backend")
    assert sorted(modules) == ["fakepkg/__init__.py", "fakepkg/backend.py", "fakepkg/deep.py",
                               "fakepkg/direct.py", "fakepkg/sub/__init__.py",
                               "fakepkg/sub/helpers.py"]
    assert third_party == {"numpy"}  # json is stdlib; unused.py's pandas is not reached


def test_editing_a_transitively_imported_module_changes_the_version(package: Path,
                                                                    tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = cv.code_version("fakepkg.backend", cache_dir=cache)
    (package / "deep.py").write_text("thing = 3  # edited\n")
    after = cv.code_version("fakepkg.backend", cache_dir=cache)
    assert before.digest != after.digest
    assert cv.describe_change(before.component(), after.component()) == [
        "code changed: fakepkg/deep.py"]
    (package / "unused.py").write_text("import pandas  # edited\n")
    assert cv.code_version("fakepkg.backend", cache_dir=cache) == after


def test_cached_parse_equals_a_fresh_parse(package: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = cv.code_version("fakepkg.backend", cache_dir=cache)
    assert (cache / cv.CACHE_FILE).is_file()
    assert cv.code_version("fakepkg.backend", cache_dir=cache) == first
    assert cv.code_version("fakepkg.backend", cache_dir=None) == first
    (cache / cv.CACHE_FILE).write_text("{not json")  # a damaged cache is rebuilt, not trusted
    assert cv.code_version("fakepkg.backend", cache_dir=cache) == first


def test_library_and_python_versions_are_part_of_it(package: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    before = cv.code_version("fakepkg.backend", cache_dir=tmp_path)
    assert "numpy" in before.distributions
    real = cv._dist_version
    monkeypatch.setattr(cv, "_dist_version",
                        lambda name: "0.0.1" if name == "numpy" else real(name))
    after = cv.code_version("fakepkg.backend", cache_dir=None)
    assert cv.describe_change(before.component(), after.component()) == [
        f"numpy {before.distributions['numpy']} -> 0.0.1"]
    monkeypatch.setattr(cv.platform, "python_version", lambda: "3.99.0")
    newer = cv.code_version("fakepkg.backend", cache_dir=None)
    assert f"Python {before.python} -> 3.99.0" in cv.describe_change(after.component(),
                                                                     newer.component())


def test_builtin_backends_reach_the_modules_a_review_found_missing() -> None:
    from churnctl.registry import backend_class

    validate = cv.backend_code_version(backend_class("validate", "pandas"))
    assert {"churnctl/domain/schema.py", "churnctl/backends/validation_gate.py",
            "churnctl/domain/quality.py"} <= set(validate.modules)
    train = cv.backend_code_version(backend_class("train", "sklearn"))
    # pyarrow is never imported by name (pandas.read_parquet uses it): the extra names it.
    assert {"scikit-learn", "pandas", "numpy", "pyarrow"} <= set(train.distributions)
    assert {"churnctl/domain/model.py", "churnctl/promotion.py"} <= set(train.modules)
    ingest = cv.backend_code_version(backend_class("ingest", "shell"))
    assert "churnctl/domain/generator.py" in ingest.modules  # run in a subprocess by the script
