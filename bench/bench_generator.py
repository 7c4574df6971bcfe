"""The synthetic data generator: events/s and peak memory at the default size (2,000 users x
120 days) and at 100x that (200,000 users x 120 days). Targets: >= 1M events/s, a few GB.
Then generate + write Parquet at 200,000 users, in memory (`generate` + `write_dataset`, one
frame) against chunked (`write_chunked`, 50,000 users a part): the chunked peak must follow
the chunk, not the data set (issue 16: 1,000,000 users x 120 days in bounded memory).

Each case runs in its own child process so `ru_maxrss` is that case's peak, not the largest
so far.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

from _common import write_results  # noqa: E402

CASES = {"default": (2_000, 120, 7), "100x": (200_000, 120, 2)}  # users, days, repeats
# users, days, users per chunk (0: one frame in memory)
WRITE_CASES = {"write_200k_in_memory": (200_000, 120, 0),
               "write_200k_chunked": (200_000, 120, 50_000)}


def measure(users: int, days: int, repeat: int) -> dict[str, float | int]:
    """Time generate() `repeat` times in this process (after a small warm-up)."""
    from churnctl.domain.generator import GeneratorConfig, generate

    generate(GeneratorConfig(users=50, days=30))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    samples, events = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        _, frame = generate(GeneratorConfig(users=users, days=days))
        samples.append(time.perf_counter() - began)
        events = len(frame)
        del frame
    best, median = min(samples), statistics.median(samples)
    return {
        "users": users, "days": days, "events": events, "repeats": repeat,
        "median_s": round(median, 3), "min_s": round(best, 3),
        "events_per_s_median": round(events / median), "events_per_s_best": round(events / best),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mib": round(baseline, 1),
    }


def measure_write(users: int, days: int, chunk_users: int) -> dict[str, float | int]:
    """Generate and write Parquet once, in a temporary directory (removed after)."""
    import shutil
    import tempfile

    from churnctl.domain.generator import GeneratorConfig, generate, write_dataset
    from churnctl.domain.generator_chunks import write_chunked

    generate(GeneratorConfig(users=50, days=30))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(tempfile.mkdtemp(prefix="bench-generator-"))
    config = GeneratorConfig(users=users, days=days)
    try:
        began = time.perf_counter()
        if chunk_users:
            written = write_chunked(config, out, chunk_users)
            events, parts = int(written["events"]), int(written["parts"])  # type: ignore[call-overload]
        else:
            users_frame, events_frame = generate(config)
            write_dataset(users_frame, events_frame, out, "parquet")
            events, parts = len(events_frame), 1
        took = time.perf_counter() - began
        size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "users": users, "days": days, "chunk_users": chunk_users or None, "events": events,
        "parts": parts, "seconds": round(took, 3), "events_per_s": round(events / took),
        "parquet_mib": round(size / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_imports_mib": round(baseline, 1),
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] in ("--case", "--write-case"):
        run = measure if sys.argv[1] == "--case" else measure_write
        print(json.dumps(run(*(int(a) for a in sys.argv[2:]))))
        return
    figures: dict[str, object] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    for name, (users, days, repeat) in CASES.items():
        args = [sys.executable, __file__, "--case", str(users), str(days), str(repeat)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        figures[name] = json.loads(done.stdout)
    for name, (users, days, chunk) in WRITE_CASES.items():
        args = [sys.executable, __file__, "--write-case", str(users), str(days), str(chunk)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        figures[name] = json.loads(done.stdout)
    figures["chunked_over_in_memory"] = {
        key: round(figures["write_200k_chunked"][key]  # type: ignore[index]
                   / figures["write_200k_in_memory"][key], 2)  # type: ignore[index]
        for key in ("seconds", "peak_rss_mib")}
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["meets_1m_events_per_s"] = all(
        figures[name]["events_per_s_median"] >= 1_000_000 for name in CASES)  # type: ignore[index]
    write_results("generator", figures)


if __name__ == "__main__":
    main()
