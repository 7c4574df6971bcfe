"""features.spark against features.pandas on the same data, in one run. Writes
bench/results/spark.json.

One workspace: ingest + validate once (built-in generator, `--users` x `--days`), then the
features stage alone with each backend (`churnctl run --only features --force`), each in its
own process: wall seconds, the stage's own seconds, and the peak resident memory of the whole
process tree (sampled every 0.1 s; for Spark in local mode that is the Python driver plus the
JVM, which runs the executors' tasks in its threads). The Spark figure includes its JVM start.

With `--chunked` the data comes from the chunked generator instead (`churnctl data generate
--chunk-users`, Parquet part directories, measured too) through `ingest.files`, so sizes that
do not fit one frame (1,000,000 users x 120 days) can be made; `--backends spark` leaves out
pandas (whose dense cube would need about 60 GiB there) and `--validate gx-spark` validates on
Spark too.

Usage: python bench/bench_spark.py [--users 20000] [--days 120] [--master local[2]]
       [--driver-memory 4g] [--chunked [--chunk-users 50000]] [--backends pandas,spark]
       [--validate pandas]
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

RESULTS_DIR = Path(tempfile.gettempdir()) / "churnctl-bench-spark"  # failed runs' stderr


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
        # A JVM failure ends in pages of stack frames: keep the lines that name the cause,
        # and the whole stderr beside the results for reading later.
        causes = [line.strip() for line in err.splitlines()
                  if ("Exception" in line or "Error" in line or line.lstrip().startswith(
                      "Caused by")) and not line.lstrip().startswith("at ")]
        log = RESULTS_DIR / f"failed-{int(time.time())}.stderr.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(err)
        raise RuntimeError(f"{' '.join(args[2:])} failed (stderr: {log}): "
                           + "\n".join(dict.fromkeys(causes[:40])) + f"\n{err[-1000:]}")
    return json.loads(out), round(wall, 2), round(peak / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--chunked", action="store_true",
                        help="data from the chunked generator (part directories)")
    parser.add_argument("--chunk-users", type=int, default=50_000)
    parser.add_argument("--backends", default="pandas,spark",
                        help="features backends to measure, comma-separated")
    parser.add_argument("--validate", default="pandas", help="validate backend")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where the JSON goes (default bench/results)")
    args = parser.parse_args()
    chosen = [b for b in args.backends.split(",") if b]
    if not chosen or set(chosen) - {"pandas", "spark"}:
        parser.error(f"--backends {args.backends!r}: pandas, spark or both")
    root = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    figures: dict[str, Any] = {"users": args.users, "days": args.days,
                               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        if args.chunked:
            folder = root / "data"
            made, wall, peak = measured([
                *CHURNCTL, "data", "generate", "--users", str(args.users), "--days",
                str(args.days), "--chunk-users", str(args.chunk_users), "--out", str(folder),
                "--json"])
            figures["generator"] = {"chunked": True, "wall_s": wall, "peak_rss_mib": peak,
                                    "parts": made["parts"], "chunk_users": made["chunk_users"]}
            data = ["--set", "ingest.backend=files",
                    "--set", f"ingest.users={folder / 'users.parquet'}",
                    "--set", f"ingest.events={folder / 'events.parquet'}"]
        else:
            data = ["--set", f"ingest.users={args.users}", "--set", f"ingest.days={args.days}"]
        base = [*CHURNCTL, "run", "--json", "--workspace", str(root), "--profile", "v1", *data,
                "--set", f"validate.backend={args.validate}"]
        if args.validate == "gx-spark":
            base += ["--set", f"validate.master={args.master}",
                     "--set", f"validate.driver_memory={args.driver_memory}"]
        record, wall, peak = measured([*base, "--only", "ingest", "--only", "validate"])
        events = next(s for s in record["stages"] if s["name"] == "ingest")
        figures.update({"ingest_and_validate_s": wall, "ingest_and_validate_peak_mib": peak,
                        "validate_backend": args.validate,
                        "events": events.get("summary", {}).get("events_rows")})
        backends = {
            "pandas": ["--set", "features.backend=pandas"],
            "spark": ["--set", "features.backend=spark", "--set", f"features.master={args.master}",
                      "--set", f"features.driver_memory={args.driver_memory}"],
        }
        rows = {}
        for name, sets in ((n, backends[n]) for n in chosen):
            record, wall, peak = measured([*base, "--only", "features", "--force", *sets])
            stage = next(s for s in record["stages"] if s["name"] == "features")
            rows[name] = {"wall_s": wall, "stage_s": stage["seconds"], "peak_rss_mib": peak,
                          "train_rows": stage["metrics"]["train_rows"],
                          "test_rows": stage["metrics"]["test_rows"]}
        figures["features"] = rows
        figures["spark_master"] = args.master
        figures["spark_driver_memory"] = args.driver_memory
        if len(rows) == 2:
            figures["same_rows"] = (rows["pandas"]["train_rows"] == rows["spark"]["train_rows"]
                                    and rows["pandas"]["test_rows"] == rows["spark"]["test_rows"])
            figures["spark_over_pandas"] = {
                "wall": round(rows["spark"]["wall_s"] / rows["pandas"]["wall_s"], 2),
                "peak_rss": round(rows["spark"]["peak_rss_mib"] / rows["pandas"]["peak_rss_mib"],
                                  2)}
        figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        default = (args.users == 20_000 and args.driver_memory == "4g" and not args.chunked
                   and len(rows) == 2 and args.validate == "pandas")
        name = "spark" if default else f"spark_{args.users}_{args.driver_memory}"
        if not default and args.chunked:
            name += "_chunked"
        if not default and len(rows) == 1:
            name += f"_{chosen[0]}_only"
        write_results(name, figures, args.results_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
