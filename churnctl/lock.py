"""One writer per workspace: the lock file `.churnctl/lock.json`.

Every command that writes workspace state (`run`, `stage run`, `tracking sync`, retraining,
`dvc init/push/pull`) holds this lock; read-only commands never take it.

- **Taking it** creates `.churnctl/lock.json` with `O_CREAT | O_EXCL`, which is atomic on local
  disks and on NFS v3+ (unlike `flock` on some shared volumes). The file holds JSON: host, pid,
  command, a random token, started_at and expires_at (a lease, ISO-8601 UTC).
- **Holding it** runs a daemon heartbeat thread that renews expires_at every lease/3: it
  re-reads the file, and only while the token is still ours writes a temp file and
  `os.replace`s it over the lock.
- **Releasing it** deletes the file, only if the token in it is still ours.
- **Stale holders.** A holder whose lease expired is stale: it stopped renewing, so it is dead
  or stuck. That is what works across pods on a shared volume, where a pid means nothing, so
  liveness is never decided by the pid of a holder on another host. On the *same* host (same
  hostname and pid namespace) a holder whose pid no longer runs is stale at once as well, so a
  SIGKILLed local run does not make the next one wait for its lease. A waiter breaks a stale lock
  by renaming the file to a name of its own (of two waiters, only one rename can succeed),
  checking that what it moved is the expired lock it read (else it puts it back), and retrying
  the `O_EXCL` create. Leases compare wall clocks: hosts sharing a workspace need clocks in sync
  to well within a lease (NTP). A holder paused for longer than its lease can lose the lock; its
  heartbeat notices and says so through `log`.
- **Re-entrant.** Within one process, nested acquisition of the same workspace (the Runner
  inside a CLI command that already holds it, from any thread) only counts. Across processes,
  the holder exports its token in `CHURNCTL_LOCK_TOKEN` (and the workspace in
  `CHURNCTL_LOCK_WORKSPACE`) while it holds the lock: a child process (DVC running
  `churnctl stage run`) that finds that token in the lock file proceeds as a member of its
  parent's lock, without taking or renewing it.

Only the standard library and churnctl's errors/workspace modules are imported here: every
writing command imports this module at start-up.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.errors import UserError
from churnctl.workspace import Workspace

LOCK_FILE = "lock.json"  # in the workspace's state directory (.churnctl/)
TOKEN_ENV = "CHURNCTL_LOCK_TOKEN"
WORKSPACE_ENV = "CHURNCTL_LOCK_WORKSPACE"
DEFAULT_LEASE = 30.0
MAX_POLL = 0.5  # seconds between two looks at a busy lock, at most
# A lock file that stays unreadable this long was left by a creator killed between its
# O_EXCL create and its write (the file is otherwise never incomplete).
UNREADABLE_GRACE = 10.0

Log = Callable[[str], Any]


class WorkspaceBusy(UserError):
    """Another command is writing the workspace (and we were told not to wait, or waited
    long enough). Exit code 2; the message names the holder."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


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
    """Create the lock file with `content` if there is none; True when this call created it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
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


@dataclass
class _Held:
    """This process's share of one workspace's lock."""

    pid: int
    count: int
    owner: WorkspaceLock


_REGISTRY: dict[str, _Held] = {}
_MUTEXES: dict[str, threading.Lock] = {}
_MUTEXES_GUARD = threading.Lock()


def _mutex(key: str) -> threading.Lock:
    with _MUTEXES_GUARD:
        return _MUTEXES.setdefault(key, threading.Lock())


class WorkspaceLock:
    """The writer lock of one workspace, as a context manager; see the module docstring.

    After entering: `token` (of the lock held), `member` (True when this process proceeds
    inside the lock of a parent process), `lost` (the heartbeat found the lock taken away).
    """

    def __init__(self, workspace: Workspace, command: str, *, wait: bool = True,
                 timeout: float | None = None, lease_seconds: float = DEFAULT_LEASE,
                 log: Log | None = None) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.root = workspace.root.resolve()
        self.path = self.root / workspace.state.name / LOCK_FILE
        self.command = command
        self.wait = wait
        self.timeout = timeout
        self.lease = float(lease_seconds)
        self.log = log
        self.token = ""
        self.member = False
        self.lost = False
        self._started = 0.0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}

    # -- entering and leaving --------------------------------------------------------------

    def __enter__(self) -> WorkspaceLock:
        key = str(self.path)
        with _mutex(key):  # threads of this process take the file lock one at a time
            held = _REGISTRY.get(key)
            if held is not None and held.pid == os.getpid():  # (not one inherited by fork)
                held.count += 1
                self.token, self.member = held.owner.token, held.owner.member
                return self
            self._acquire()
            _REGISTRY[key] = _Held(os.getpid(), 1, self)
        return self

    def __exit__(self, *_exc: object) -> None:
        key = str(self.path)
        with _mutex(key):
            held = _REGISTRY.get(key)
            if held is None or held.pid != os.getpid():
                return
            held.count -= 1
            if held.count > 0:
                return
            del _REGISTRY[key]
            held.owner._release()

    # -- the file ----------------------------------------------------------------------------

    def _content(self) -> bytes:
        now = time.time()
        data = {"host": socket.gethostname(), "pid": os.getpid(), "command": self.command,
                "token": self.token, "started_at": _iso(self._started),
                "expires_at": _iso(now + self.lease), "lease_seconds": self.lease,
                "pid_namespace": _pid_namespace(), "workspace": str(self.root)}
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.token = os.urandom(16).hex()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        delay = 0.02
        announced = False
        while True:
            self._started = time.time()
            if _create(self.path, self._content()):
                self._hold()
                return
            seen = _read(self.path)
            if seen is None:
                continue  # released between our create and our read: try again at once
            holder = seen.holder
            now = time.time()
            if holder is not None and holder.token == os.environ.get(TOKEN_ENV) and \
                    holder.expires_at.timestamp() > now:
                self.token, self.member = holder.token, True  # our parent process holds it
                return
            if _stale(seen, now):
                if _break(self.path, seen):
                    continue
            elif not self.wait:
                raise WorkspaceBusy(f"workspace {self.root} is being written by "
                                    f"{_describe(holder)}; wait for it, or rerun without "
                                    "--no-wait", holder)
            if deadline is not None and time.monotonic() >= deadline:
                raise WorkspaceBusy(f"workspace {self.root} is still being written by "
                                    f"{_describe(holder)} after waiting {self.timeout:g} s; "
                                    "try again when it has finished", holder)
            if self.log is not None and not announced:
                self.log(f"waiting for {_describe(holder)} to finish writing workspace "
                         f"{self.root}")
                announced = True
            pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, MAX_POLL)

    def _hold(self) -> None:
        self._saved_env = {name: os.environ.get(name) for name in (TOKEN_ENV, WORKSPACE_ENV)}
        os.environ[TOKEN_ENV] = self.token
        os.environ[WORKSPACE_ENV] = str(self.root)
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="churnctl-lock-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                ours = self._renew()
            except OSError:
                continue  # a hiccup of the (network) filesystem: the next beat tries again
            if not ours:
                self.lost = True
                if self.log is not None:
                    seen = _read(self.path)
                    self.log(f"lost the lock of workspace {self.root} to "
                             f"{_describe(seen.holder if seen else None)}")
                return

    def _renew(self) -> bool:
        """Extend the lease; False when the lock is no longer ours."""
        seen = _read(self.path)
        if seen is None:  # a breaker moved it aside by mistake (it puts it back) or it is free
            return _create(self.path, self._content())
        if seen.holder is None or seen.holder.token != self.token:
            return False
        tmp = self.path.with_name(f".{self.path.name}.{self.token[:12]}.renew")
        tmp.write_bytes(self._content())
        os.replace(tmp, self.path)
        return True

    def _release(self) -> None:
        if self.member:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=self.lease)
            self._heartbeat = None
        try:
            seen = _read(self.path)
            if seen is not None and seen.holder is not None and seen.holder.token == self.token:
                self.path.unlink(missing_ok=True)
        finally:
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def workspace_lock(workspace: Workspace, command: str, *, wait: bool = True,
                   timeout: float | None = None, lease_seconds: float = DEFAULT_LEASE,
                   log: Log | None = None) -> WorkspaceLock:
    """The one writer lock of `workspace`, held by `command` (shown to whoever waits for it).

    `wait=False` raises WorkspaceBusy (exit 2, one line naming the holder) instead of waiting;
    otherwise poll until the lock is free or stale, or `timeout` seconds passed. Nothing is
    printed while waiting unless `log` is given (then one line). Re-entrant; see the module.
    """
    return WorkspaceLock(workspace, command, wait=wait, timeout=timeout,
                         lease_seconds=lease_seconds, log=log)
