"""The v1 pipeline: a full run at the default size (target < 15 s), a no-op re-run (< 0.3 s),
and 20,000 users x 120 days within 4 GiB peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CHURNCTL, time_command, write_results


def _run(workspace: Path, *extra: str) -> dict:
    """One `churnctl run` in a child, with its wall time and the child's peak RSS."""
    probe = (
        "import resource, subprocess, sys, time, json;"
        "t=time.perf_counter(); p=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "w=time.perf_counter()-t; r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "print(json.dumps({'wall_s': w, 'peak_rss_mib': r/1024, 'rc': p.returncode,"
        " 'out': p.stdout}))"
    )
    args = [
        sys.executable,
        "-c",
        probe,
        *CHURNCTL,
        "run",
        "--json",
        "--workspace",
        str(workspace),
        *extra,
    ]
    done = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    if done["rc"] != 0:
        raise SystemExit(f"churnctl run failed: {done}")
    record = json.loads(done["out"])
    return {
        "wall_s": round(done["wall_s"], 3),
        "peak_rss_mib": round(done["peak_rss_mib"], 1),
        "stages": {
            s["name"]: {"status": s["status"], "seconds": s["seconds"]} for s in record["stages"]
        },
        "pr_auc": record["metrics"].get("pr_auc"),
    }


def main() -> None:
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "default"
        ws.mkdir()
        began = time.perf_counter()
        figures["default_full_run"] = _run(ws) | {"target_s": 15}
        figures["default_full_run"]["total_s"] = round(time.perf_counter() - began, 3)
        figures["noop_rerun"] = time_command([*CHURNCTL, "run", "--workspace", str(ws)], repeat=5)
        figures["noop_rerun"]["target_s"] = 0.3
        large = Path(tmp) / "large"
        large.mkdir()
        figures["users_20000"] = _run(large, "--set", "ingest.users=20000") | {
            "target_peak_mib": 4096
        }
    write_results("pipeline", figures)


if __name__ == "__main__":
    main()
