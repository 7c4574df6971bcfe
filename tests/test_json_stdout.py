"""`--json` stdout holds the JSON document alone, whatever a command's children print.

HotSpot writes its VM output (flags, warnings) on stdout, and the Spark JVM, DVC's stage
processes and native libraries inherit the CLI's fd 1: one such line made `run --json`
unparseable in the 1M-user benchmark. These run churnctl as a real process, with real fds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL
from tests.spark_session import SPARK_MASTER

CHURNCTL = Path(sys.executable).parent / "churnctl"
NOISY_JVM = '{"spark.driver.extraJavaOptions": "-XX:+PrintCommandLineFlags"}'


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JVM")
def test_children_writing_stdout_land_on_stderr_and_print_json_alone_on_stdout() -> None:
    code = """if True:
        import os, subprocess
        from churnctl.cli.common import json_stdout, print_json
        with json_stdout():
            subprocess.run(["java", "-XX:+PrintCommandLineFlags", "-version"], check=True)
            os.write(1, b"native noise\\n")
            print("a stray print")
            print_json({"ok": 1})
        print("after the block, stdout is stdout again")
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    document, _, after = done.stdout.partition("}\n")
    assert json.loads(document + "}") == {"ok": 1}
    assert after == "after the block, stdout is stdout again\n"
    assert "-XX:+PrintCommandLineFlags" in done.stderr
    assert "native noise" in done.stderr and "a stray print" in done.stderr


def test_run_json_stays_parseable_while_the_spark_jvm_prints(finished_workspace: Path) -> None:
    done = subprocess.run(
        [str(CHURNCTL), "run", "--json", "--workspace", str(finished_workspace), *SMALL,
         "--only", "features", "--set", "features.backend=spark",
         "--set", f"features.master={SPARK_MASTER}", "--set", f"features.conf={NOISY_JVM}"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)  # the JVM's flags line went to stderr
    assert [s["backend"] for s in record["stages"] if s["name"] == "features"] == ["spark"]
    assert "-XX:+PrintCommandLineFlags" in done.stderr
