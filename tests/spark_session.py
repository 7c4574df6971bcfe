"""One local Spark session for every Spark test in the run (a JVM start costs 10-40 s here).

churnctl's features.spark reuses a session already active in its process, so CLI tests run
in-process (CliRunner) share this one instead of starting their own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

SPARK_MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install 'churnctl[spark]')")
    from churnctl.backends.features_spark import SparkFeatures, SparkFeaturesOptions
    from churnctl.spark.session import java_problem, spark_session

    problem = java_problem()
    if problem:
        pytest.skip(f"Spark needs {problem}")
    conf = SparkFeatures.conf(SparkFeaturesOptions(master=SPARK_MASTER))
    with spark_session(conf) as session:
        yield session
