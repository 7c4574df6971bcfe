"""The synthetic data generator: events/s and peak memory at the default size (2,000 users x
120 days) and at 100x that (200,000 users x 120 days). Targets: >= 1M events/s, a few GB.

Each size runs in its own child process so `ru_maxrss` is that size's peak, not the largest so far.
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


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--case":
        print(json.dumps(measure(*(int(a) for a in sys.argv[2:]))))
        return
    figures: dict[str, object] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    for name, (users, days, repeat) in CASES.items():
        args = [sys.executable, __file__, "--case", str(users), str(days), str(repeat)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        figures[name] = json.loads(done.stdout)
    figures["meets_1m_events_per_s"] = all(
        figures[name]["events_per_s_median"] >= 1_000_000 for name in CASES)  # type: ignore[index]
    write_results("generator", figures)


if __name__ == "__main__":
    main()
