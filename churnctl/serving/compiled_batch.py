"""Batch scoring of a HistGradientBoostingClassifier through a compiled tree library.

treelite reads the fitted trees (`treelite.sklearn.import_model`, which also follows sklearn's
own re-encoding of categorical columns) and tl2cgen turns them into C, compiled by gcc into a
shared library that scores the dense matrix the classifier sees on `BATCH_THREADS` threads.
churnctl's layout (serving/layout.py) still prepares that matrix.

Compiling takes seconds, so the library is cached in the workspace (`.churnctl/cache/compiled/`)
under the sha256 of the trees as treelite serializes them and of the compile settings, written
atomically; a cached file is loaded only if this user owns it and no one else may write it or its
folder (loading a shared library runs its code). The caller verifies the library's output
against the pipeline before using it (scoring.py); anything missing or failing here is a reason
string, and batch scoring keeps the existing path.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from churnctl.workspace import Workspace

BATCH_THREADS = 2
# quantize: thresholds become integer bin indices compared once per row (~1.5x faster here);
# -O1 (after tl2cgen's -O3) halves gcc's time at the same scoring speed for 300 trees.
TL2CGEN_PARAMS: dict[str, Any] = {"quantize": 1, "parallel_comp": 2}
GCC_OPTIONS = ["-O1"]
INSTALL_HINT = "pip install 'churnctl[fast]'"


def library_dir(workspace: Workspace) -> Path:
    """Where compiled tree libraries are cached: one per model, reused by every batch run and
    every server that loads the model."""
    return workspace.state / "cache" / "compiled"


class TreeLibrary:
    """A compiled tree library: probabilities of the positive class for dense rows."""

    kind = "tl2cgen"

    def __init__(self, predictor: Any, path: Path, categories: list[tuple[int, np.ndarray]],
                 cached: bool, seconds: float, threads: int) -> None:
        self.predictor = predictor
        self.path = path
        self.categories = categories
        self.cached = cached  # loaded from the cache rather than compiled now
        self.seconds = seconds  # to compile (or load) it
        self.threads = threads
        self._lock = threading.Lock()  # tl2cgen: one predict call at a time per predictor

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        import tl2cgen

        if not len(matrix):
            return np.empty(0)
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        copied = False
        for column, known in self.categories:
            unknown = ~np.isin(matrix[:, column], known)
            if unknown.any():
                if not copied:
                    matrix, copied = matrix.copy(), True
                matrix[unknown, column] = np.nan
        with self._lock:
            out = self.predictor.predict(tl2cgen.DMatrix(matrix))
        return np.asarray(out, dtype=np.float64).reshape(len(matrix), -1)[:, -1]


def category_inputs(estimator: Any) -> list[tuple[int, np.ndarray]]:
    """Each categorical input column and the codes sklearn's trees know for it.

    sklearn re-encodes categorical columns itself (its `_preprocessor`), turning a code it did
    not see in training, such as OrdinalEncoder's -1 for an unseen category, into NaN: the side
    missing values take. treelite follows the category lists instead (0.34 off for such rows
    here), so the library gets NaN for those codes.
    """
    mask = getattr(estimator, "is_categorical_", None)
    if mask is None or not np.asarray(mask, dtype=bool).any():
        return []
    pre = getattr(estimator, "_preprocessor", None)
    if pre is None:
        raise ValueError("categorical splits without sklearn's re-encoding step")
    inputs = pre._transformer_to_input_indices["encoder"]
    categories = pre.named_transformers_["encoder"].categories_
    return [(int(column), np.asarray(known, dtype=np.float64)[~np.isnan(known)])
            for column, known in zip(inputs, categories, strict=True)]


def import_trees(estimator: Any) -> Any:
    """The estimator's trees as a treelite model (a seam tests use to corrupt one leaf)."""
    import treelite.sklearn

    return treelite.sklearn.import_model(estimator)


def library_key(trees: Any) -> str:
    import tl2cgen
    import treelite

    digest = hashlib.sha256(trees.serialize_bytes())
    settings = {"treelite": treelite.__version__, "tl2cgen": tl2cgen.__version__,
                "params": TL2CGEN_PARAMS, "gcc": GCC_OPTIONS, "machine": os.uname().machine}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _unsafe(path: Path) -> str | None:
    """Why a cached file (or its folder) may not be loaded, or None."""
    info = path.stat()
    if info.st_uid != os.getuid():
        return f"{path} belongs to another user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by other users"
    return None


def _compile(trees: Any, path: Path) -> None:
    """Compile `trees` into `path` atomically: a reader sees no file or the whole library."""
    import tl2cgen

    # tl2cgen prints its log lines ("Parallel compilation enabled; ..."), and the treelite it
    # embeds writes to stderr that the model "originated from a newer Treelite version" (its
    # output is verified instead): both kept out of the command's output, shown on failure.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with _captured_stderr() as errors, contextlib.redirect_stdout(io.StringIO()) as log:
            try:
                tl2cgen.export_lib(trees, toolchain="gcc", libpath=tmp,
                                   params=dict(TL2CGEN_PARAMS), nthread=BATCH_THREADS,
                                   options=list(GCC_OPTIONS))
            except Exception as exc:
                errors.seek(0)
                said = (log.getvalue() + errors.read()).strip().splitlines()[-3:]
                raise RuntimeError(f"{exc} {' | '.join(said)}".strip()) from exc
        # Not writable by group or others whatever the umask: that is what loading checks.
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as done:
            os.fsync(done.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Any]:
    """File descriptor 2 into a temp file for the block (native code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_library(estimator: Any, cache_dir: Path, *, compile_missing: bool = True,
                 threads: int = BATCH_THREADS) -> tuple[TreeLibrary | None, str]:
    """The compiled library of a HistGradientBoostingClassifier, or None and why not."""
    started = time.perf_counter()
    try:
        import tl2cgen
        import treelite  # noqa: F401
    except ImportError as exc:
        return None, f"treelite/tl2cgen not installed ({exc.name}; {INSTALL_HINT})"
    try:
        categories = category_inputs(estimator)
        trees = import_trees(estimator)
        key = library_key(trees)
    except Exception as exc:  # sklearn internals treelite does not know: keep the sklearn path
        return None, f"treelite cannot read the trees: {type(exc).__name__}: {exc}"
    path = cache_dir / f"{key}.so"
    cached = path.is_file()
    if cached:
        problem = _unsafe(cache_dir) or _unsafe(path)
        if problem and (not compile_missing or _unsafe(cache_dir)):
            return None, f"compiled library not loaded: {problem}"
        cached = not problem  # else compiled again below, replacing it with a file of our own
    if not cached:
        if not compile_missing:
            return None, "no compiled library cached for this model"
        if shutil.which("gcc") is None:
            return None, "tl2cgen needs gcc, which is not installed"
        cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        problem = _unsafe(cache_dir)
        if problem:
            return None, f"compiled library not written: {problem}"
        try:
            _compile(trees, path)
        except Exception as exc:
            return None, f"tl2cgen failed to compile the trees: {type(exc).__name__}: {exc}"
    try:
        predictor = tl2cgen.Predictor(str(path), nthread=threads)
    except Exception as exc:
        return None, f"tl2cgen cannot load {path}: {type(exc).__name__}: {exc}"
    if predictor.num_feature != getattr(estimator, "n_features_in_", None):
        return None, f"compiled library expects {predictor.num_feature} features"
    seconds = time.perf_counter() - started
    return TreeLibrary(predictor, path, categories, cached, seconds, threads), ""
