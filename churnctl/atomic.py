"""Atomic writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def _prefix(target: Path) -> str:
    # The writer's pid is in the name for whoever reads a directory listing; staleness is not
    # decided by it (a pid means nothing on a volume several hosts share): see sweep_stale.
    return f".{target.name}.pid{os.getpid()}."


def sweep_stale(folder: Path) -> list[Path]:
    """Remove every temp file and directory in `folder`; return what was removed.

    Call it only while holding the workspace's writer lock (churnctl.lock): then no writer
    is running, so every temp entry is what a killed writer (SIGKILL, power loss) left.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(f".*{TMP_SUFFIX}"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; rename it over `target` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_umask())
        _fsync(tmp_path)
        os.replace(tmp_path, target)
        _fsync(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entry to disk (a rename is durable only after both)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if sys.platform != "linux":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


@contextmanager
def atomic_dir(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temp directory; it becomes `target` only if the block succeeds.

    Its files and directories are fsynced before the rename. When `target` exists, it is kept
    (same key, same content: a concurrent or earlier writer got there first) unless `replace`,
    which swaps the new tree in atomically: the old one stays readable until that instant.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=TMP_SUFFIX, dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        fsync_tree(tmp)
        if not target.exists():
            os.replace(tmp, target)
        elif replace and not _exchange(tmp, target):
            # No atomic swap here: move the old tree aside first; a crash in between leaves
            # the old tree under a temp name, which the next locked run sweeps.
            aside = tmp.with_name(f".{target.name}.old{TMP_SUFFIX}")
            os.replace(target, aside)
            os.replace(tmp, target)
            shutil.rmtree(aside, ignore_errors=True)
        _fsync(target.parent)
    finally:
        if tmp.exists():  # the old tree after a swap, or the unused new one
            shutil.rmtree(tmp, ignore_errors=True)
