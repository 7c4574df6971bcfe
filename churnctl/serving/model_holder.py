"""The model a server answers with, and the hot reload that swaps it.

A `Snapshot` bundles everything a request needs from one model version: the model, its compiled
scorer and its request validators. The holder keeps one reference to the current snapshot and
replaces it in a single assignment after the new version is fully loaded, compiled and verified,
so a request that read the reference once uses one version throughout: no failed or mixed
request during a promotion. A background thread polls the registry index (and the features
artifact used for user_id look-ups) every `interval` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.domain.model import ChurnModel
from churnctl.domain.model_registry import ModelRegistry, ModelVersion
from churnctl.serving.compiled_batch import library_dir
from churnctl.serving.lookup import FeatureTable, latest_features_path, open_feature_source
from churnctl.serving.schema import RequestModels, build_request_models
from churnctl.serving.scoring import Scorer, compile_scorer
from churnctl.workspace import Workspace

log = logging.getLogger("uvicorn.error")  # shown with uvicorn's own log lines
RETRY_SECONDS = 30.0  # a version that failed to load is tried again after this long


@dataclass(frozen=True)
class Snapshot:
    entry: ModelVersion
    model: ChurnModel
    scorer: Scorer
    requests: RequestModels
    loaded_at: str

    @property
    def version(self) -> int:
        return self.entry.version


def load_snapshot(registry: ModelRegistry, entry: ModelVersion, max_batch: int,
                  library_dir: Path | None = None) -> Snapshot:
    """Load, compile and verify one registry version (slow: call it off the request path).

    With `library_dir`, gradient boosting also scores batches through its compiled tree library
    (compiled once per model and cached there, as `churnctl batch` does; verified at load)."""
    # The local registry checks the file against the sha256 it recorded at registration.
    model = registry.load_model(entry.version)
    return Snapshot(
        entry=entry,
        model=model,
        scorer=compile_scorer(model, library_dir=library_dir),
        requests=build_request_models(model.schema, max_batch),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    # The registry replaces its index by rename, so the inode changes even within one mtime tick.
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class ModelHolder:
    def __init__(
        self,
        workspace: Workspace,
        max_batch: int,
        on_swap: Callable[[Snapshot], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        registry: Any = None,
        cache_users: int | None = None,
    ) -> None:
        self.workspace = workspace
        # The local registry, or anything with its interface (serving/sources.py).
        self.registry = registry if registry is not None else ModelRegistry(workspace.registry)
        self.max_batch = max_batch
        self.cache_users = cache_users
        self.on_swap = on_swap
        self.on_error = on_error
        self.last_error: str | None = None
        self._snapshot: Snapshot | None = None
        self._features: FeatureTable | None = None
        self._features_error: str | None = None
        self._runs_signature: tuple[object, str] | None = None
        self._index_signature: tuple[int, int, int] | None = None
        self._failed: tuple[tuple[int, int, int] | None, float] | None = None  # (index, retry at)
        self._checked = False  # whether the registry has been read at least once
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Snapshot | None:
        """The snapshot to use for one whole request: read it once, then use only that."""
        return self._snapshot

    @property
    def features(self) -> FeatureTable | None:
        return self._features

    @property
    def features_error(self) -> str | None:
        return self._features_error

    def refresh(self) -> bool:
        """Check the registry and the features artifact; True if the model was switched."""
        with self._refresh_lock:
            pending = self._pending_model()
            # Features first, keyed by the id column of the model about to serve, so a server
            # that turns ready can answer user_id look-ups at once.
            serving = pending or self._snapshot
            self._refresh_features(serving.model.id_column if serving else "user_id")
            if pending is not None:
                self._swap(pending)
            self._checked = True
            return pending is not None

    def not_ready_reason(self) -> str:
        if self.last_error:
            return self.last_error
        if not self._checked:
            return "loading the production model"
        return (f"no production model in the registry at {self.registry.root}; train and "
                "promote one with `churnctl run`")

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.error(message)
        self.last_error = message
        if self.on_error is not None:
            self.on_error(message)

    def _pending_model(self) -> Snapshot | None:
        """A fully loaded snapshot of a new production version, if the registry has one."""
        signature = _signature(self.registry.index_path)
        if signature is not None and signature == self._index_signature:
            return None
        failed = self._failed
        if failed is not None and failed[0] == signature and time.monotonic() < failed[1]:
            return None  # the same broken version: retry now and then, not every poll
        try:
            entry = self.registry.production()
        except (OSError, ValueError, KeyError) as exc:
            self._fail(f"cannot read the model registry at {self.registry.root}: {exc}")
            return None
        current = self._snapshot
        if entry is None or (current is not None and current.version == entry.version):
            if entry is None and current is not None:
                log.warning("registry has no production model; still serving v%d", current.version)
            self._index_signature = signature
            self.last_error = None
            return None
        try:
            snapshot = load_snapshot(self.registry, entry, self.max_batch,
                                     library_dir(self.workspace))
        except Exception as exc:  # any broken model file: keep serving the current one
            self._fail(f"loading model v{entry.version} failed ({type(exc).__name__}: {exc}); "
                       + (f"still serving v{current.version}" if current else "not ready"))
            self._failed = (signature, time.monotonic() + RETRY_SECONDS)
            return None
        self._index_signature = signature
        self._failed = None
        return snapshot

    def _swap(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # the switch: one reference assignment
        self.last_error = None
        scorer = snapshot.scorer
        how = scorer.kind + (f" ({scorer.reason})" if scorer.reason else "")
        log.info("serving model v%d (%s, scorer: %s)", snapshot.version,
                 snapshot.entry.algorithm, how)
        if self.on_swap is not None:
            self.on_swap(snapshot)

    def _refresh_features(self, id_column: str) -> None:
        # Run records are written by rename into runs/, which changes the directory's mtime:
        # unchanged, there is no newer features artifact and no need to read every record.
        runs = (_signature(self.workspace.runs), id_column)
        if self._features is not None and runs == self._runs_signature:
            return
        try:
            path = latest_features_path(self.workspace)
        except (OSError, ValueError, KeyError) as exc:
            self._features_error = f"cannot read run records: {exc}"
            return
        current = self._features
        if path is None:
            if current is None:
                self._features_error = (f"no features artifact in {self.workspace.root}; run "
                                        "`churnctl run` to build one")
            return
        self._runs_signature = runs
        if current is not None and current.path == path and current.id_column == id_column:
            return
        try:
            table = open_feature_source(self.workspace, path, id_column,
                                        cache_users=self.cache_users)
        except Exception as exc:  # unreadable file: keep the previous table
            self._features_error = f"cannot read {path}: {type(exc).__name__}: {exc}"
            log.error(self._features_error)
            return
        self._features = table
        self._features_error = None
        log.info("user_id look-ups: %d users from %s", len(table), path)
        if current is not None:  # a look-up still on it finishes, uncached, on its connection
            current.close()

    def start(self, interval: float) -> None:
        """Load in the background now, then poll every `interval` seconds (0: load only)."""
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="churnctl-model-reload", daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        self._safe_refresh()
        while interval > 0 and not self._stop.wait(interval):
            self._safe_refresh()

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception:  # the poller must survive anything; the error is logged
            log.exception("model refresh failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=0.5)  # a daemon: an ongoing load must not delay exit
