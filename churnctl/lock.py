"""One writer per workspace: the lock file `.churnctl/lock.json`.

Every command that writes workspace state (`run`, `stage run`, `tracking sync`, retraining,
`dvc init/push/pull`) holds this lock; read-only commands never take it.

- **Taking it** writes the holder's JSON to a file of its own and hard-links it to
  `.churnctl/lock.json`; `link` fails when the lock exists and is atomic on local disks and on
  NFS (unlike `flock` on some shared volumes), so the lock is never seen half-written. Without
  hard links it falls back to `O_CREAT | O_EXCL`. The JSON: host, pid, command, a random token,
  started_at and expires_at (a lease, ISO-8601 UTC).
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
  the create. Leases compare wall clocks: hosts sharing a workspace need clocks in sync
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
from typing import Any

from churnctl.errors import UserError
from churnctl.lock_file import (  # noqa: F401 - read_holder and the file helpers are API here
    LOCK_FILE,
    Holder,
    _break,
    _create,
    _describe,
    _iso,
    _pid_namespace,
    _read,
    _stale,
    read_holder,
)
from churnctl.workspace import Workspace

TOKEN_ENV = "CHURNCTL_LOCK_TOKEN"
WORKSPACE_ENV = "CHURNCTL_LOCK_WORKSPACE"
DEFAULT_LEASE = 30.0
MAX_POLL = 0.5  # seconds between two looks at a busy lock, at most

Log = Callable[[str], Any]


class WorkspaceBusy(UserError):
    """Another command is writing the workspace (and we were told not to wait, or waited
    long enough). Exit code 2; the message names the holder."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


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
