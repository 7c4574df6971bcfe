"""Helpers for benchmarks: timing commands and writing JSON figures to bench/results/."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
CHURNCTL = [sys.executable, "-m", "churnctl"]


def time_command(args: list[str], repeat: int = 7, cwd: Path | None = None) -> dict[str, float]:
    """Median and min wall seconds of a command over `repeat` runs (after one warm-up)."""
    subprocess.run(args, cwd=cwd, capture_output=True, check=True)
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(args, cwd=cwd, capture_output=True, check=True)
        samples.append(time.perf_counter() - began)
    return {"median_s": round(statistics.median(samples), 4), "min_s": round(min(samples), 4)}


def peak_child_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def write_results(name: str, figures: dict[str, Any], folder: Path | None = None) -> Path:
    folder = folder or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        **figures,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
