"""The lock file of a workspace: what it says about its holder, and the file operations that
take, read and break it atomically (churnctl.lock builds the writer lock on these).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.workspace import Workspace

LOCK_FILE = "lock.json"  # in the workspace's state directory (.churnctl/)
# Where hard links are missing the lock is created with O_EXCL and then written: a lock file
# that stays unreadable this long was left by a creator killed in between.
UNREADABLE_GRACE = 10.0


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the command holding it."""

    host: str
    pid: int
    command: str
    token: str
    started_at: datetime | None
    expires_at: datetime
    pid_namespace: str = ""

    @classmethod
    def parse(cls, raw: bytes) -> Holder | None:
        try:
            data = json.loads(raw)
            expires = _parse_time(data["expires_at"])
            if expires is None:
                return None
            return cls(host=str(data["host"]), pid=int(data["pid"]),
                       command=str(data.get("command") or "churnctl"), token=str(data["token"]),
                       started_at=_parse_time(data.get("started_at")), expires_at=expires,
                       pid_namespace=str(data.get("pid_namespace") or ""))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        since = _clock(self.started_at)
        return f"`{self.command}` (pid {self.pid} on host {self.host}, since {since})"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    moment = moment.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(holder: Holder | None) -> str:
    return holder.describe() if holder is not None else "another churnctl command"


@dataclass(frozen=True)
class _Seen:
    """One read of the lock file: its bytes and identity, to tell later whether it changed."""

    raw: bytes
    inode: int
    mtime_ns: int
    holder: Holder | None

    def same(self, other: _Seen | None) -> bool:
        return other is not None and (self.raw, self.inode, self.mtime_ns) == (
            other.raw, other.inode, other.mtime_ns)


def _read(path: Path) -> _Seen | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        stat = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    return _Seen(raw, stat.st_ino, stat.st_mtime_ns, Holder.parse(raw))


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we can ask about: leave it to the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it runs, as another user
    try:  # a killed child its parent has not reaped yet still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _same_host(holder: Holder) -> bool:
    return holder.host == socket.gethostname() and holder.pid_namespace == _pid_namespace()


def _stale(seen: _Seen, now: float) -> bool:
    """Whether the lock read as `seen` has no live holder: lease expired, or (same host only)
    its pid no longer runs."""
    holder = seen.holder
    if holder is None:
        return now - seen.mtime_ns / 1e9 > UNREADABLE_GRACE
    if holder.expires_at.timestamp() <= now:
        return True
    return _same_host(holder) and not _alive(holder.pid)


def _create(path: Path, content: bytes) -> bool:
    """Create the lock file with `content` if there is none; True when this call created it.

    The content is written to a file of this caller's first and hard-linked into place:
    `link` is atomic and fails when the lock exists (on NFS too), so no reader ever sees a lock
    file half-written. Filesystems without hard links fall back to `O_EXCL` then write, where
    a reader can see an empty file for an instant (`_stale` gives that UNREADABLE_GRACE).
    """
    draft = path.with_name(f".{path.name}.new.{os.getpid()}.{os.urandom(4).hex()}")
    _write_new(draft, content)
    try:
        os.link(draft, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        return _create_in_place(path, content)
    finally:
        draft.unlink(missing_ok=True)


def _write_new(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _create_in_place(path: Path, content: bytes) -> bool:
    try:
        _write_new(path, content)
    except FileExistsError:
        return False
    return True


def _break(path: Path, seen: _Seen) -> bool:
    """Remove the stale lock read as `seen`; True when this caller removed it.

    The file is renamed to a name of this caller's, so of several breakers only one moves it;
    whoever moved something else (a renewed lease, or a new holder's lock after another breaker
    won) puts it back.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return False
    if (stat.st_ino, stat.st_mtime_ns) != (seen.inode, seen.mtime_ns):
        return False  # changed since we read it: judge it again
    aside = path.with_name(f".{path.name}.broken.{socket.gethostname()}.{os.getpid()}."
                           f"{os.urandom(4).hex()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False  # released, or broken by another waiter first
    try:
        if seen.same(_read(aside)):
            return True
        _restore(aside, path)
        return False
    finally:
        aside.unlink(missing_ok=True)


def _restore(aside: Path, path: Path) -> None:
    """Put a live lock back that a breaker moved by mistake, unless a new one exists by now."""
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # someone took the free lock meanwhile; the displaced holder's heartbeat notices
    except OSError:  # no hard links on this filesystem
        os.rename(aside, path)


def read_holder(workspace: Workspace) -> Holder | None:
    """Who holds the workspace's lock now (None when nobody does or the file is unreadable)."""
    seen = _read(workspace.state / LOCK_FILE)
    return seen.holder if seen is not None else None
