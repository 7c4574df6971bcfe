"""The one Spark session of a run: Java check, master URL check, configuration.

PySpark 4 runs on Java 17 or later; `plan` and `doctor` ask `java_problem()` (no pyspark
import) so a machine without a usable Java hears it before any stage runs. A cluster master
that does not answer is found by a bounded TCP probe instead of Spark's own registration
retries (minutes, and a wall of JVM log lines).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from churnctl.errors import BackendUnavailable, UserError

MIN_JAVA = 17  # PySpark 4.x is built for Java 17 and 21
DEFAULT_MASTER = "local[*]"
PROBE_SECONDS = 5.0
_DEFAULT_PORTS = {"spark": 7077, "k8s": 443}
_LOCAL = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?")


def java_executable() -> str | None:
    """The java PySpark starts: $JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.is_file() else None
    return shutil.which("java")


def parse_java_major(text: str) -> int | None:
    """Major version from `java -version` output: 'version "17.0.15"' -> 17, '"1.8.0_392"' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


@functools.lru_cache(maxsize=4)
def _java_report(java: str | None) -> tuple[int | None, str]:
    if java is None:
        return None, ""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    text = done.stderr or done.stdout
    return parse_java_major(text), (text.strip().splitlines() or [""])[0]


def java_problem() -> str | None:
    """None when a Java >= 17 is there; else what is needed and how to get it (a phrase that
    reads after "needs", as plan and doctor print it)."""
    java = java_executable()
    where = "JAVA_HOME" if os.environ.get("JAVA_HOME") else "PATH"
    if java is None:
        return (f"Java {MIN_JAVA} or later (no java found via {where}; install a JDK, e.g. "
                "apt-get install openjdk-17-jre-headless, or set JAVA_HOME)")
    major, line = _java_report(java)
    if major is None:
        return f"Java {MIN_JAVA} or later ({java} gave no version: {line or 'no output'})"
    if major < MIN_JAVA:
        return (f"Java {MIN_JAVA} or later ({java} is Java {major}; install a newer JDK or "
                "point JAVA_HOME at one)")
    return None


def java_version() -> str:
    major, line = _java_report(java_executable())
    return line if major is not None else ""


def shuffle_partitions(master: str, configured: int | None) -> int:
    """Shuffle partitions sized to the cores: Spark's default 200 is tuned for clusters and
    makes 200 tiny tasks per stage on a laptop. A cluster keeps what the profile says (or 200)."""
    if configured:
        return configured
    local = _LOCAL.fullmatch(master)
    if local is None:
        return 200
    cores = local.group(2)
    count = 1 if cores is None else (os.cpu_count() or 1) if cores == "*" else int(cores)
    return max(1, 2 * count)


def master_problem(master: str) -> str | None:
    """What is wrong with a master URL's form (no network), or None."""
    if master.startswith("local"):
        return None if _LOCAL.fullmatch(master) else (
            f"master {master!r}: use local, local[N] or local[*]")
    if master == "yarn":
        return None
    scheme, _, rest = master.partition("://")
    if scheme not in _DEFAULT_PORTS or not _endpoint(scheme, rest)[0]:
        return (f"master {master!r}: use local[*], spark://HOST:PORT, "
                "k8s://https://HOST:PORT or yarn")
    return None


def _endpoint(scheme: str, rest: str) -> tuple[str, int]:
    target = urlsplit(rest if "://" in rest else f"//{rest}")
    host = (target.hostname or "").split(",")[0]
    try:
        port = target.port
    except ValueError:
        return "", 0
    default = 80 if target.scheme == "http" else _DEFAULT_PORTS[scheme]
    return host, port or default


def check_master(master: str, timeout: float = PROBE_SECONDS, stage: str = "features") -> None:
    """A cluster master must answer within `timeout` seconds: one line and exit 2 if not.
    `stage` names the profile key in the message (validate.gx-spark has a master too)."""
    problem = master_problem(master)
    if problem:
        raise UserError(f"{stage}.{problem}")
    if master.startswith("local"):
        return
    if master == "yarn":
        if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
            raise UserError(f"{stage}.master yarn: set HADOOP_CONF_DIR or YARN_CONF_DIR to the "
                            "cluster's configuration directory")
        return
    scheme, _, rest = master.partition("://")
    host, port = _endpoint(scheme, rest)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UserError(f"{stage}.master {master}: {host}:{port} did not answer within "
                        f"{timeout:g} s ({reason}); start the cluster or fix the URL "
                        f"(e.g. --set {stage}.master=local[*])") from None


def job_conf() -> dict[str, str]:
    """What the feature job needs from any session, local or spark-submitted."""
    return {
        # Day numbers come from dates: the session must not shift them by the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        # pandas writes nanosecond timestamps, which Spark cannot read as timestamps: read
        # them as epoch nanoseconds (exact) and turn them into day numbers ourselves.
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        # No _SUCCESS marker in committed artifacts (the artifact's manifest is the marker).
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.sql.adaptive.enabled": "true",
    }


def session_conf(master: str, app_name: str, partitions: int | None = None,
                 driver_memory: str | None = None, extra: dict[str, str] | None = None,
                 ) -> dict[str, str]:
    """The Spark configuration of a feature run (also what `pipeline compile` writes out)."""
    conf = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.sql.shuffle.partitions": str(shuffle_partitions(master, partitions)),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        **job_conf(),
    }
    if driver_memory:
        conf["spark.driver.memory"] = driver_memory
    conf.update(extra or {})
    return conf


# Settings a running session takes without a restart (the rest need a new JVM).
_RUNTIME_KEYS = ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions",
                 "spark.sql.legacy.parquet.nanosAsLong", "spark.sql.adaptive.enabled")


@contextmanager
def spark_session(conf: dict[str, str], log: Any = None,
                  probe_seconds: float = PROBE_SECONDS) -> Iterator[Any]:
    """One session for the run, stopped at the end. A session already active in this process
    (a notebook, a test suite's shared session) is reused with the run's SQL settings and left
    running for its owner."""
    if "spark.master" in conf:  # else spark-submit started us and chose the master itself
        problem = java_problem()
        if problem:
            raise BackendUnavailable(f"features.spark needs {problem}")
        check_master(conf["spark.master"], probe_seconds)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        for key in _RUNTIME_KEYS:
            if key in conf:
                active.conf.set(key, conf[key])
        yield active
        return
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    if log:
        log(f"starting Spark ({conf.get('spark.master', 'from spark-submit')}, "
            f"{conf.get('spark.sql.shuffle.partitions', 'default')} shuffle partitions)")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def _python() -> str:
    import sys

    return sys.executable
