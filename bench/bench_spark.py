"""features.spark against features.pandas on the same data, in one run. Writes
bench/results/spark.json.

One workspace: ingest + validate once (built-in generator, `--users` x `--days`), then the
features stage alone with each backend (`churnctl run --only features --force`), each in its
own process: wall seconds, the stage's own seconds, and the peak resident memory of the whole
process tree (sampled every 0.1 s; for Spark in local mode that is the Python driver plus the
JVM, which runs the executors' tasks in its threads). The Spark figure includes its JVM start.

Usage: python bench/bench_spark.py [--users 20000] [--days 120] [--master local[2]]
       [--driver-memory 4g]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import CHURNCTL, write_results


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0


def measured(args: list[str]) -> tuple[dict[str, Any], float, float]:
    """(run record, wall seconds, peak MiB of the process tree) of one churnctl command."""
    began = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(process.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args[2:])} failed: {err[-2000:]}")
    return json.loads(out), round(wall, 2), round(peak / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    data = ["--set", f"ingest.users={args.users}", "--set", f"ingest.days={args.days}"]
    base = [*CHURNCTL, "run", "--json", "--workspace", str(root), "--profile", "v1", *data]
    try:
        record, wall, _ = measured([*base, "--only", "ingest", "--only", "validate"])
        events = next(s for s in record["stages"] if s["name"] == "ingest")
        figures: dict[str, Any] = {
            "users": args.users, "days": args.days, "ingest_and_validate_s": wall,
            "events": events.get("summary", {}).get("events_rows"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        backends = {
            "pandas": ["--set", "features.backend=pandas"],
            "spark": ["--set", "features.backend=spark", "--set", f"features.master={args.master}",
                      "--set", f"features.driver_memory={args.driver_memory}"],
        }
        rows = {}
        for name, sets in backends.items():
            record, wall, peak = measured([*base, "--only", "features", "--force", *sets])
            stage = next(s for s in record["stages"] if s["name"] == "features")
            rows[name] = {"wall_s": wall, "stage_s": stage["seconds"], "peak_rss_mib": peak,
                          "train_rows": stage["metrics"]["train_rows"],
                          "test_rows": stage["metrics"]["test_rows"]}
        figures["features"] = rows
        figures["spark_master"] = args.master
        figures["spark_driver_memory"] = args.driver_memory
        figures["same_rows"] = (rows["pandas"]["train_rows"] == rows["spark"]["train_rows"]
                                and rows["pandas"]["test_rows"] == rows["spark"]["test_rows"])
        figures["spark_over_pandas"] = {
            "wall": round(rows["spark"]["wall_s"] / rows["pandas"]["wall_s"], 2),
            "peak_rss": round(rows["spark"]["peak_rss_mib"] / rows["pandas"]["peak_rss_mib"], 2)}
        figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        default = args.users == 20_000 and args.driver_memory == "4g"
        write_results("spark" if default else f"spark_{args.users}_{args.driver_memory}",
                      figures)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
