"""A self-contained demo workspace: synthetic per-user features and a trained production model.

Test scaffolding, kept out of the package: the serving tests and bench/bench_serving.py use it.
The columns follow the features stage (windows 7/14/30 days, static user columns); the
numbers come from a small latent model, not from the real generator.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnctl.atomic import write_json
from churnctl.domain.model import MODEL_FILE, ChurnModel, FeatureSpec
from churnctl.domain.model_registry import ModelRegistry, ModelVersion
from churnctl.hashing import file_sha256
from churnctl.stages import MANIFEST
from churnctl.workspace import Workspace

WINDOW_METRICS = ("active_days", "events", "logins", "watch_minutes", "quiz_attempts",
                  "quiz_avg_score", "payment_success", "payment_failed", "support_ticket")
NUMERIC = [f"{m}_{w}d" for w in (7, 14, 30) for m in WINDOW_METRICS] + [
    "payment_fail_rate_30d", "days_since_last_activity", "days_since_signup", "is_paid"]
CATEGORIES = {
    "plan": ("free", "paid"),
    "country": ("IN", "US", "UK", "CA", "AU", "SG"),
    "marketing_source": ("organic", "referral", "ads", "youtube", "community"),
}
AS_OF = date(2025, 4, 30)
Algorithm = Literal["logistic", "hgb"]


def demo_features(users: int, seed: int = 42, as_of: date = AS_OF) -> pd.DataFrame:
    """One row per user: `user_id`, `as_of`, every feature column and a `churn_label`."""
    rng = np.random.default_rng(seed)
    engagement = rng.beta(2.0, 2.5, users)
    data: dict[str, object] = {
        "user_id": [f"u{i:07d}" for i in range(users)],
        "as_of": np.full(users, as_of),
    }
    for window in (7, 14, 30):
        active = rng.binomial(window, engagement)
        events = active * rng.poisson(4.0, users)
        attempts = rng.binomial(events, 0.1)
        data |= {
            f"active_days_{window}d": active, f"events_{window}d": events,
            f"logins_{window}d": rng.binomial(events, 0.3),
            f"watch_minutes_{window}d": events * rng.gamma(2.0, 6.0, users),
            f"quiz_attempts_{window}d": attempts,
            f"quiz_avg_score_{window}d": np.where(attempts > 0, rng.uniform(30, 100, users), 0.0),
            f"payment_success_{window}d": rng.binomial(1, 0.1 * engagement, users),
            f"payment_failed_{window}d": rng.binomial(1, 0.05, users),
            f"support_ticket_{window}d": rng.poisson(0.1 + 0.3 * (1 - engagement), users),
        }
    plan = rng.choice(CATEGORIES["plan"], users, p=[0.65, 0.35])
    data |= {
        "payment_fail_rate_30d": rng.beta(1.0, 8.0, users),
        "days_since_last_activity": rng.exponential(10.0 * (1.2 - engagement)),
        "days_since_signup": rng.uniform(1, 400, users).round(),
        "is_paid": (plan == "paid").astype(np.float64),
        "plan": plan,
        "country": rng.choice(CATEGORIES["country"], users),
        "marketing_source": rng.choice(CATEGORIES["marketing_source"], users),
    }
    frame = pd.DataFrame(data)
    for name in NUMERIC:
        frame[name] = frame[name].astype(np.float64)
    recency = frame["days_since_last_activity"]
    logit = 1.5 - 4.0 * engagement + 0.08 * recency - 0.6 * frame["is_paid"]
    frame["churn_label"] = (rng.random(users) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def train_demo_model(frame: pd.DataFrame, algorithm: Algorithm = "logistic",
                     seed: int = 0) -> ChurnModel:
    """A pipeline like the train stage's: ColumnTransformer (scale, one-hot) plus a classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = list(CATEGORIES)
    numeric_step = StandardScaler() if algorithm == "logistic" else "passthrough"
    prep = ColumnTransformer([
        ("num", numeric_step, NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    classifier = (LogisticRegression(max_iter=2000, C=1.0 / (1 + seed)) if algorithm == "logistic"
                  else HistGradientBoostingClassifier(max_iter=60 + seed, random_state=seed))
    pipeline = Pipeline([("prep", prep), ("model", classifier)])
    split = int(len(frame) * 0.8)
    train, test = frame.iloc[:split], frame.iloc[split:]
    pipeline.fit(train[NUMERIC + categorical], train["churn_label"])
    features = [FeatureSpec(n, "numeric") for n in NUMERIC] + [
        FeatureSpec(n, "categorical", tuple(sorted(v))) for n, v in CATEGORIES.items()]
    model = ChurnModel(pipeline, features, algorithm)
    scores = model.predict_proba(test)
    model.metrics = {
        "pr_auc": float(average_precision_score(test["churn_label"], scores)),
        "roc_auc": float(roc_auc_score(test["churn_label"], scores)),
    }
    return model


def register_model(workspace: Workspace, model: ChurnModel, promote: bool = True) -> ModelVersion:
    """Add `model` to the workspace registry (production when `promote`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        model.save(path)
        artifact = file_sha256(path)
        return ModelRegistry(workspace.ensure().registry).register(
            path, artifact, model.algorithm, model.metrics, model.schema, promote=promote,
            decision="demo model" if promote else "demo candidate")


def write_features_artifact(workspace: Workspace, frame: pd.DataFrame) -> Path:
    """Commit `frame` as a features artifact (`latest.parquet`) and a run record naming it."""
    body = frame.drop(columns=["churn_label"], errors="ignore")
    key = hashlib.sha256(pd.util.hash_pandas_object(body).to_numpy().tobytes()).hexdigest()
    out = workspace.ensure().artifact_dir("features", key)
    out.mkdir(parents=True, exist_ok=True)
    body.to_parquet(out / "latest.parquet", index=False)
    files = {"latest.parquet": file_sha256(out / "latest.parquet")}
    write_json(out / MANIFEST, {"stage": "features", "key": key, "files": files,
                                "contents": {"tables": {"latest": {"path": "latest.parquet"}}}})
    run_id = f"demo-{key[:12]}"
    row = {"name": "features", "status": "ran", "artifact": str(out.relative_to(workspace.root))}
    write_json(workspace.runs / f"{run_id}.json", {"run_id": run_id, "stages": [row]})
    return out


def make_demo_workspace(root: Path, users: int = 2_000, algorithm: Algorithm = "logistic",
                        seed: int = 42) -> Workspace:
    """A workspace with a features artifact and one production model trained on it."""
    workspace = Workspace(root.resolve()).ensure()
    frame = demo_features(users, seed)
    write_features_artifact(workspace, frame)
    register_model(workspace, train_demo_model(frame, algorithm))
    return workspace


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A real uvicorn server in a child process, stopped by its PID."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def wait(self, path: str = "/ready", timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n"
                                   + self.log.read_text()[-3000:])
            try:
                if self.status(path) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}{path} not 200 after {timeout}s:\n"
                           + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to this PID: uvicorn shuts down gracefully
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextmanager
def running_server(workspace: Workspace, options: dict[str, Any] | None = None,
                   wait_for: str = "/ready", command: list[str] | None = None
                   ) -> Iterator[ServerProcess]:
    """Start the API for `workspace` on a free port of 127.0.0.1; stop it on exit.

    By default `python -m uvicorn --factory ...` (what `churnctl serve` runs); `command` may
    replace it, e.g. with the `churnctl serve` command line (given the port via {port}).
    """
    from churnctl.serving.options import ServeOptions
    from churnctl.serving.server import FACTORY, config_env

    port = free_port()
    opts = ServeOptions.model_validate({**(options or {}), "host": "127.0.0.1", "port": port})
    argv = ([part.format(port=port) for part in command] if command else [
        sys.executable, "-m", "uvicorn", "--factory", FACTORY, "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log"])
    log = workspace.state / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, **config_env(workspace, opts)})
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait(wait_for)
        yield server
    finally:
        server.stop()
