"""Decoded Redis rows kept until Redis says they changed (server-assisted client-side caching).

Once a connection has sent `CLIENT TRACKING ON REDIRECT <id>`, Redis (6 and later) remembers
the keys it reads and, when any client changes one, publishes the key on
`__redis__:invalidate` to the client <id>: here a listener connection in a daemon thread that
drops the key's row. A cached look-up then costs a dict look-up instead of an HMGET round trip
(~100 µs on this machine's shared cores, most of `/predict`'s time on Redis). redis-py's own
client-side cache needs RESP3 and Redis 7.4 (Debian ships 7.0); this is the RESP2 redirect mode
that Redis documents for older clients.

Freshness: a write is seen once its invalidation has reached the listener (one message on a
local socket; under load the listener may wait a GIL switch, ~5 ms). While the listener is
down nothing is cached: it clears the rows, `alive` goes False and the reader reads Redis
each time until a new listener is up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

INVALIDATE = b"__redis__:invalidate"


class TrackedRows:
    """Rows by Redis key, each dropped when Redis reports the key changed (or all of them
    when Redis reports a flush or the listener's connection ends)."""

    def __init__(self, client: Any, capacity: int) -> None:
        pool = client.connection_pool
        self._new = lambda **extra: pool.connection_class(**{**pool.connection_kwargs, **extra})
        self.capacity = capacity
        self.rows: dict[bytes, Any] = {}
        self._lock = threading.Lock()  # a miss's check-then-store against the listener's drop
        self._local = threading.local()
        self.listener = self._new(socket_timeout=None, health_check_interval=0)
        try:
            self.listener.connect()
            self.listener.send_command("CLIENT", "ID")
            self.client_id = self.listener.read_response()
            self.listener.send_command("SUBSCRIBE", INVALIDATE)
            self.listener.read_response()
            self._connection()  # Redis refusing CLIENT TRACKING (before 6, ACLs) says so now
        except BaseException:
            self.listener.disconnect()
            raise
        self.alive = True
        threading.Thread(target=self._listen, name="redis-invalidations", daemon=True).start()

    def _listen(self) -> None:
        rows, lock = self.rows, self._lock
        try:
            while self.alive:
                message = self.listener.read_response()
                if not (isinstance(message, list) and message[:2] == [b"message", INVALIDATE]):
                    continue
                with lock:
                    if message[2] is None:  # FLUSHALL / FLUSHDB: every key changed
                        rows.clear()
                    else:
                        for key in message[2]:
                            rows.pop(key, None)
        except Exception:  # the connection ended (or a reply made no sense): trust nothing
            pass
        finally:
            self.alive = False
            with lock:
                rows.clear()

    def _connection(self) -> Any:
        # A connection per thread, tracked: its reads are the ones Redis reports changes of.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new()
            conn.connect()
            conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", self.client_id)
            conn.read_response()
            self._local.conn = conn
        return conn

    def get(self, key: bytes, fields: list[Any], decode: Callable[[list[Any]], Any]) -> Any:
        """decode(HMGET key fields), from the cache while Redis has not reported the key."""
        row = self.rows.get(key)
        if row is not None and row.__class__ is not _Pending:
            return row
        pending = _Pending()
        with self._lock:
            if len(self.rows) >= self.capacity:  # the oldest entry goes: bounded memory
                self.rows.pop(next(iter(self.rows)), None)
            self.rows[key] = pending
        conn = self._connection()
        try:
            conn.send_command("HMGET", key, *fields)
            row = decode(conn.read_response())
        except BaseException:
            self._local.conn = None
            conn.disconnect()
            with self._lock:
                if self.rows.get(key) is pending:
                    del self.rows[key]
            raise
        with self._lock:
            # Kept only if no invalidation came while it was read: a change reported on the
            # listener's connection may overtake this reply on ours.
            if self.rows.get(key) is pending and self.alive:
                self.rows[key] = row
        return row

    def close(self) -> None:
        self.alive = False
        self.listener.disconnect()


class _Pending:
    """A look-up in flight: an invalidation that arrives meanwhile removes it."""

    __slots__ = ()
