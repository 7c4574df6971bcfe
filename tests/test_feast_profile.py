"""`profile diff` names the services the target profile needs: Redis when features.feast's
online store is redis (host:port only, never a password), nothing to start for SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from churnctl.cli.main import app

REDIS_PROFILE = """name: v3-redis
extends: v3
stages:
  features:
    backend: feast
    options: {online_store: redis, redis_connection: "redis.internal:6380,password=hunter2"}
"""


def _diff(*args: str) -> dict:
    result = CliRunner().invoke(app, ["profile", "diff", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_diff_to_a_redis_online_store_lists_redis_without_the_password(tmp_path: Path) -> None:
    profile = tmp_path / "v3-redis.yaml"
    profile.write_text(REDIS_PROFILE)
    diff = _diff("v2", str(profile))
    redis = [s for s in diff["services"] if s["name"] == "Redis"]
    assert redis == [{"binding": "features", "name": "Redis",
                      "why": "Feast online store at redis.internal:6380"}]
    (features,) = [row for row in diff["changes"] if row["binding"] == "features"]
    assert features["services"] == [{"name": "Redis",
                                     "why": "Feast online store at redis.internal:6380"}]
    text = CliRunner().invoke(app, ["profile", "diff", "v2", str(profile)]).output
    assert "Redis (Feast online store at redis.internal:6380)" in " ".join(text.split())
    assert "hunter2" not in text and "hunter2" not in json.dumps(diff)


def test_diff_to_v3_with_sqlite_needs_no_redis() -> None:
    diff = _diff("v2", "v3")
    assert "Redis" not in [s["name"] for s in diff["services"]]
    text = CliRunner().invoke(app, ["profile", "diff", "v2", "v3"]).output
    assert "Redis" not in text and "services v3 needs:" in text


def test_default_redis_connection_is_named_when_the_option_is_unset(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nextends: v3\nstages:\n  features:\n    backend: feast\n"
                       "    options: {online_store: redis}\n")
    (redis,) = [s for s in _diff("v2", str(profile))["services"] if s["name"] == "Redis"]
    assert redis["why"] == "Feast online store at 127.0.0.1:6379"


def test_profile_diff_imports_no_heavy_library() -> None:
    code = ("import sys; from typer.testing import CliRunner; from churnctl.cli.main import app; "
            "r = CliRunner().invoke(app, ['profile', 'diff', 'v2', 'v3']); "
            "heavy = [m for m in ('pandas', 'sklearn', 'mlflow', 'feast', 'great_expectations', "
            "'pyspark') if m in sys.modules]; print(r.exit_code, heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []"
