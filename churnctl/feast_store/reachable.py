"""Whether features.feast's Redis online store answers, before a run spends its time on the
features stage (Feast's import, the join) only to fail at materialize. A TCP connect and a
PING, without importing Feast or redis-py: what a stopped or misnamed server fails."""

from __future__ import annotations

import socket
from typing import Any

from churnctl.errors import UserError

TIMEOUT_SECONDS = 3.0


def redis_hosts(connection: str) -> list[tuple[str, int]]:
    """(host, port) of each node of a Feast Redis connection string
    (`host:port[,host:port][,key=value...]`); the key=value parameters are left out."""
    nodes = []
    for part in connection.split(","):
        part = part.strip()
        if not part or "=" in part:
            continue
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"features.redis_connection {part!r}: expected host:port "
                            "(e.g. 127.0.0.1:6379)")
        nodes.append((host, int(port)))
    if not nodes:
        raise UserError("features.redis_connection has no host:port (e.g. 127.0.0.1:6379)")
    return nodes


def _answers(host: str, port: int) -> str | None:
    """None when the server answers a PING (any reply: NOAUTH is a Redis answering), else why."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(64)[:1] in (b"+", b"-"):
                return None
            return "no Redis reply to PING"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_redis(opts: Any) -> None:
    """Raise a one-line UserError (exit 2) naming the connection when Redis does not answer."""
    if getattr(opts, "online_store", "sqlite") != "redis":
        return
    nodes = redis_hosts(str(opts.redis_connection))
    for host, port in nodes:
        why = _answers(host, port)
        if why is not None:
            shown = ",".join(f"{h}:{p}" for h, p in nodes)
            raise UserError(f"features.feast: the Redis online store at {shown} does not answer "
                            f"({why}); start redis-server there, or set "
                            "features.redis_connection=HOST:PORT (or "
                            "features.online_store=sqlite)")
