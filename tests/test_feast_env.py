"""Importing Feast must not change the process environment churnctl's servers inherit."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_feast_import_leaves_prometheus_multiprocess_mode_off() -> None:
    # A fresh interpreter: whether feast.metrics was imported earlier in this one is unknown.
    code = ("import json, os\n"
            "from churnctl.feast_store.store import quiet_feast\n"
            "quiet_feast()\n"
            "import feast.feature_store, prometheus_client.values as v\n"
            "print(json.dumps([os.environ.get('PROMETHEUS_MULTIPROC_DIR'),\n"
            "                  os.environ.get('PROMETHEUS_MULTIPROCESS_DIR'),\n"
            "                  v.ValueClass.__name__]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.splitlines()[-1]) == [None, None, "MutexValue"]


def test_a_foreign_multiprocess_dir_does_not_switch_the_apps_metrics(tmp_path, monkeypatch) -> None:
    from churnctl.serving.metrics import ServingMetrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # as Feast leaves it
    monkeypatch.delenv("CHURNCTL_METRICS_MULTIPROC_DIR", raising=False)
    metrics = ServingMetrics()
    assert metrics.multiprocess_dir is None and metrics._scraped is metrics.registry
