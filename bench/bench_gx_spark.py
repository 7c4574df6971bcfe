"""validate.gx-spark beside validate.gx on the same ingested data, at 2,000 and 20,000 users x
120 days (issue 16: no target of its own; this shows where the Spark gate starts to pay).
Each figure is the stage's own seconds from the run record (for gx-spark that includes the
Spark session's start, a JVM, and GX's import) and the whole command's wall time. Both
validate the same suites, so the checks and the verdict must agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CHURNCTL, write_results

SIZES = (2000, 20000)


def _run(workspace: Path, *extra: str) -> tuple[dict, float]:
    began = time.perf_counter()
    done = subprocess.run([*CHURNCTL, "run", "--json", "--workspace", str(workspace), *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"churnctl run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall


def measure(users: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-gx-spark-") as folder:
        root = Path(folder)
        size = ["--set", f"ingest.users={users}"]
        _run(root, "--only", "ingest", *size)
        figures: dict = {"users": users}
        for backend in ("gx", "gx-spark"):
            record, wall = _run(root, "--only", "ingest", "--only", "validate", *size,
                                "--set", f"validate.backend={backend}")
            row = next(r for r in record["stages"] if r["name"] == "validate")
            assert row["status"] == "ran", row
            report = json.loads((root / "reports" / "validation.json").read_text())
            figures["rows"] = report["rows"]
            figures[backend] = {"stage_s": row["seconds"], "command_wall_s": round(wall, 3),
                                "checks": row["metrics"].get("validation_checks_total"),
                                "passed": row["metrics"].get("validation_checks_passed")}
        figures["same_verdicts"] = figures["gx"]["passed"] == figures["gx-spark"]["passed"]
        figures["load_average_1m"] = round(os.getloadavg()[0], 1)  # 2 cores, shared
        return figures


def main() -> None:
    write_results("gx_spark", {"master": "local[*]", "sizes": [measure(n) for n in SIZES]})


if __name__ == "__main__":
    main()
