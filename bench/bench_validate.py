"""The validate stage: validate.gx (Great Expectations 1.x) beside validate.pandas on the same
ingested data, at the default size (2,000 users x 120 days; target <= 5 s with the GX import)
and at 20,000 users (target <= 20 s). Each figure is the stage's own seconds from the run
record (GX is imported inside the stage, so its import is included) and the whole command's
wall time (interpreter start-up, CLI and the cached ingest on top)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CHURNCTL, write_results

TARGETS_S = {2000: 5.0, 20000: 20.0}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(workspace: Path, *extra: str) -> tuple[dict, float, float]:
    """The run record, the command's wall seconds and its CPU seconds (user + system: on a
    shared machine the wall time is mostly waiting for a core, the CPU time is not)."""
    began, cpu = time.perf_counter(), _cpu()
    done = subprocess.run([*CHURNCTL, "run", "--json", "--workspace", str(workspace), *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"churnctl run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall, _cpu() - cpu


def _stage(record: dict, name: str) -> dict:
    return next(row for row in record["stages"] if row["name"] == name)


def measure(users: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as folder:
        root = Path(folder)
        size = ["--set", f"ingest.users={users}"]
        _run(root, "--only", "ingest", *size)
        figures: dict = {"users": users}
        for backend in ("pandas", "gx"):
            record, wall, cpu = _run(root, "--only", "ingest", "--only", "validate", *size,
                                "--set", f"validate.backend={backend}")
            row = _stage(record, "validate")
            assert row["status"] == "ran", row
            figures["rows"] = json.loads((root / "reports" / "validation.json").read_text())["rows"]
            figures[backend] = {"stage_s": row["seconds"], "command_wall_s": round(wall, 3),
                                "command_cpu_s": round(cpu, 3),
                                "checks": row["metrics"].get("validation_checks_total")}
        figures["load_average_1m"] = round(os.getloadavg()[0], 1)  # 2 cores, shared
        figures["gx_target_s"] = TARGETS_S[users]
        figures["gx_within_target"] = figures["gx"]["stage_s"] <= TARGETS_S[users]
        return figures


def main() -> None:
    write_results("validate", {"sizes": [measure(users) for users in TARGETS_S]})


if __name__ == "__main__":
    main()
