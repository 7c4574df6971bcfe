"""One writer per workspace (churnctl.lock): real processes, real SIGKILLs, short leases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from churnctl.lock import (
    LOCK_FILE,
    TOKEN_ENV,
    WORKSPACE_ENV,
    WorkspaceBusy,
    _break,
    _create,
    _read,
    read_holder,
    workspace_lock,
)
from churnctl.workspace import Workspace

# Takes the lock of workspace argv[1] as command argv[2] with lease argv[3], prints one JSON
# line, holds it argv[4] seconds. FAKE_HOST makes it a process "on another host".
HOLDER = """
import json, os, socket, sys, time
if os.environ.get("FAKE_HOST"):
    socket.gethostname = lambda: os.environ["FAKE_HOST"]
from pathlib import Path
from churnctl.lock import WorkspaceBusy, workspace_lock
from churnctl.workspace import Workspace
start = float(os.environ.get("START_AT", "0"))
time.sleep(max(0.0, start - time.time()))
try:
    with workspace_lock(Workspace(Path(sys.argv[1])), sys.argv[2], wait=False,
                        lease_seconds=float(sys.argv[3])) as lock:
        print(json.dumps({"pid": os.getpid(), "token": lock.token, "member": lock.member}),
              flush=True)
        time.sleep(float(sys.argv[4]))
except WorkspaceBusy as exc:
    print(str(exc), file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture(autouse=True)
def _no_inherited_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, WORKSPACE_ENV)}
    return {**env, **extra}


def _spawn(ws: Workspace, command: str = "churnctl run", lease: float = 30.0,
           hold: float = 30.0, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.root), command, str(lease),
                             str(hold)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(**env))


def _holding(ws: Workspace, **kwargs: object) -> tuple[subprocess.Popen[str], dict]:
    proc = _spawn(ws, **kwargs)  # type: ignore[arg-type]
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line, proc.stderr.read()  # type: ignore[union-attr]
    return proc, json.loads(line)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # reaped: its pid no longer runs


def _fake_lock(ws: Workspace, host: str, pid: int, expires_in: float) -> Path:
    now = datetime.now(UTC)
    path = ws.state / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "host": host, "pid": pid, "command": "churnctl run", "token": "f" * 32,
        "started_at": (now - timedelta(minutes=5)).isoformat(),
        "expires_at": (now + timedelta(seconds=expires_in)).isoformat()}))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cli_run_no_wait_exits_2_naming_the_holder(ws: Workspace) -> None:
    holder, info = _holding(ws)
    try:
        done = subprocess.run([sys.executable, "-m", "churnctl", "run", "--no-wait",
                               "--workspace", str(ws.root)], capture_output=True, text=True,
                              env=_env(CHURNCTL_PROFILE="v1"), timeout=60)
    finally:
        _kill(holder)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"workspace {ws.root.resolve()} is being written by `churnctl run` " \
           f"(pid {info['pid']} on host {socket.gethostname()}, since " in lines[0]
    assert "UTC); wait for it, or rerun without --no-wait" in lines[0]
    assert not list(ws.runs.glob("*.json"))  # it did no work


def test_waiter_gets_the_lock_once_the_holder_exits(ws: Workspace) -> None:
    holder, info = _holding(ws, command="hold", hold=0.8)
    said: list[str] = []
    with workspace_lock(ws, "waiter", timeout=10, log=said.append) as lock:
        assert holder.poll() is not None  # it got the lock only after the holder was gone
        assert read_holder(ws).token == lock.token  # type: ignore[union-attr]
    holder.wait()
    assert len(said) == 1
    assert said[0].startswith(f"waiting for `hold` (pid {info['pid']} on host ")
    assert not (ws.state / LOCK_FILE).exists()


def test_timeout_gives_up_naming_the_holder(ws: Workspace) -> None:
    holder, info = _holding(ws)
    try:
        started = time.monotonic()
        with pytest.raises(WorkspaceBusy, match=f"pid {info['pid']} on host .* after waiting"):
            workspace_lock(ws, "waiter", timeout=0.3).__enter__()
        assert 0.25 < time.monotonic() - started < 2
    finally:
        _kill(holder)


def test_sigkilled_local_holder_is_broken_at_once(ws: Workspace) -> None:
    holder, _ = _holding(ws, lease=60.0)
    _kill(holder)  # no clean-up ran: the lock file stays, with 60 s of lease left
    assert (ws.state / LOCK_FILE).exists()
    with workspace_lock(ws, "next", wait=False) as lock:  # same host, dead pid: stale
        assert read_holder(ws).token == lock.token  # type: ignore[union-attr]


def test_sigkilled_holder_on_another_host_is_broken_after_its_lease(ws: Workspace) -> None:
    holder, info = _holding(ws, lease=1.0, FAKE_HOST="pod-a")
    _kill(holder)
    expires = read_holder(ws).expires_at.timestamp()  # type: ignore[union-attr]
    # Its pid means nothing here (another host): until the lease ends, it is respected.
    with pytest.raises(WorkspaceBusy, match=f"pid {info['pid']} on host pod-a"):
        workspace_lock(ws, "next", wait=False).__enter__()
    with workspace_lock(ws, "next", timeout=5) as lock:
        assert time.time() >= expires
        assert read_holder(ws).token == lock.token  # type: ignore[union-attr]


def test_lock_of_another_host_is_respected_until_its_lease_expires(ws: Workspace) -> None:
    pid = _dead_pid()  # dead here, which says nothing about pod-b
    path = _fake_lock(ws, "pod-b", pid, expires_in=60)
    before = path.read_bytes()
    with pytest.raises(WorkspaceBusy) as busy:
        workspace_lock(ws, "churnctl run", wait=False).__enter__()
    assert f"`churnctl run` (pid {pid} on host pod-b, since " in str(busy.value)
    assert path.read_bytes() == before

    _fake_lock(ws, "pod-b", pid, expires_in=-1)
    with workspace_lock(ws, "churnctl run", wait=False) as lock:
        assert read_holder(ws).token == lock.token  # type: ignore[union-attr]
    assert not path.exists()
    assert not [p.name for p in ws.state.iterdir()]  # nothing left beside it


def test_heartbeat_keeps_a_long_holders_lease_alive(ws: Workspace) -> None:
    holder, info = _holding(ws, lease=0.5, hold=2.5, FAKE_HOST="pod-c")
    try:
        time.sleep(1.3)  # over twice the lease
        seen = read_holder(ws)
        assert seen is not None and seen.token == info["token"]
        assert seen.expires_at.timestamp() > time.time()
        with pytest.raises(WorkspaceBusy, match="on host pod-c"):
            workspace_lock(ws, "next", wait=False).__enter__()
    finally:
        _kill(holder)


def test_of_two_breakers_of_one_stale_lock_only_one_wins(ws: Workspace) -> None:
    path = _fake_lock(ws, "pod-d", 4242, expires_in=-5)
    seen = _read(path)
    assert seen is not None
    assert _break(path, seen)  # the first breaker moves the stale lock away ...
    assert _create(path, b'{"token": "new holder"}')  # ... and takes the lock
    fresh = path.read_bytes()
    # The second breaker read the same stale lock; what it would move now is the new holder's.
    assert not _break(path, seen)
    assert path.read_bytes() == fresh
    assert [p.name for p in ws.state.iterdir()] == [LOCK_FILE]


def test_breaker_that_moved_a_new_holders_lock_puts_it_back(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _fake_lock(ws, "pod-d", 4242, expires_in=-5)
    seen = _read(path)
    assert seen is not None
    real_rename = os.rename
    fresh = b'{"token": "new holder"}'

    def another_breaker_wins_first(src: object, dst: object) -> None:
        # Both breakers checked the stale lock; the other one renames, and takes the lock,
        # just before this one's rename, which then moves the new holder's lock.
        monkeypatch.setattr(os, "rename", real_rename)
        assert _break(path, seen)
        assert _create(path, fresh)
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", another_breaker_wins_first)
    assert not _break(path, seen)
    assert path.read_bytes() == fresh
    assert [p.name for p in ws.state.iterdir()] == [LOCK_FILE]


def test_the_lock_file_never_appears_half_written(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader that finds the lock file while its creator still writes it cannot name the
    # holder; the racing test below once failed that way. The lock appears only complete.
    path = ws.state / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    real_write = os.write
    seen_while_writing: list[bool] = []

    def slow_write(fd: int, data: bytes) -> int:
        seen_while_writing.append(path.exists())
        return real_write(fd, data[:7])  # a short write: several calls per file

    monkeypatch.setattr(os, "write", slow_write)
    content = b'{"token": "complete holder", "padding": "' + b"x" * 64 + b'"}'
    assert _create(path, content)
    monkeypatch.setattr(os, "write", real_write)
    assert len(seen_while_writing) > 1 and not any(seen_while_writing)
    assert path.read_bytes() == content
    assert not _create(path, b"{}")
    assert [p.name for p in ws.state.iterdir()] == [LOCK_FILE]


def test_without_hard_links_the_lock_is_created_in_place(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = ws.state / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    assert _create(path, b'{"token": "a"}')
    assert not _create(path, b'{"token": "b"}')
    assert path.read_bytes() == b'{"token": "a"}'
    assert [p.name for p in ws.state.iterdir()] == [LOCK_FILE]


def test_racing_processes_on_one_stale_lock(ws: Workspace) -> None:
    _fake_lock(ws, "pod-e", 4242, expires_in=-5)
    start = str(time.time() + 0.8)
    procs = [_spawn(ws, command=f"racer {i}", lease=5.0, hold=1.2, START_AT=start)
             for i in range(4)]
    outcomes = [proc.communicate(timeout=20) for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 2, 2, 2], outcomes
    winner = next(json.loads(out) for (out, _), proc in zip(outcomes, procs, strict=True)
                  if proc.returncode == 0)
    for (_, err), proc in zip(outcomes, procs, strict=True):
        if proc.returncode == 2:
            assert f"pid {winner['pid']} on host {socket.gethostname()}" in err


def test_nested_acquisition_in_one_process_counts(ws: Workspace) -> None:
    with workspace_lock(ws, "churnctl run", wait=False) as outer:
        with workspace_lock(ws, "runner", wait=False) as inner:
            assert inner.token == outer.token
            done: list[str] = []

            def other_thread() -> None:
                with workspace_lock(ws, "thread", wait=False) as lock:
                    done.append(lock.token)

            worker = threading.Thread(target=other_thread)
            worker.start()
            worker.join()
            assert done == [outer.token]
        assert read_holder(ws).token == outer.token  # type: ignore[union-attr]
        assert os.environ[TOKEN_ENV] == outer.token
        assert os.environ[WORKSPACE_ENV] == str(ws.root.resolve())
    assert read_holder(ws) is None
    assert TOKEN_ENV not in os.environ


def test_child_process_with_the_token_proceeds_inside_the_parents_lock(ws: Workspace) -> None:
    with workspace_lock(ws, "churnctl run --profile v2") as lock:
        child = subprocess.run([sys.executable, "-c", HOLDER, str(ws.root), "churnctl stage run",
                                "30", "0"], capture_output=True, text=True, env={**os.environ})
        assert child.returncode == 0, child.stderr
        said = json.loads(child.stdout)
        assert said["member"] is True and said["token"] == lock.token
        assert read_holder(ws).token == lock.token  # type: ignore[union-attr]
        stranger = subprocess.run([sys.executable, "-c", HOLDER, str(ws.root), "other", "30",
                                   "0"], capture_output=True, text=True, env=_env())
        assert stranger.returncode == 2
        assert f"pid {os.getpid()} on host" in stranger.stderr
    assert read_holder(ws) is None
