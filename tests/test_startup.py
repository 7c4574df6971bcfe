"""`churnctl --help` and `profile` commands stay light: no heavy library is imported."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "feast", "great_expectations", "pyspark",
         "fastapi", "kubernetes")

PROBE = """
import sys, runpy, io, contextlib
sys.argv = ["churnctl", *{args!r}]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module("churnctl", run_name="__main__")
    except SystemExit:
        pass
import json
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _loaded(*args: str) -> list[str]:
    code = PROBE.format(args=list(args), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_imports_nothing_heavy() -> None:
    assert _loaded("--help") == []


def test_profile_commands_import_nothing_heavy() -> None:
    assert _loaded("profile", "list") == []
    assert _loaded("profile", "diff", "v1", "v4") == []
    assert _loaded("backends") == []
