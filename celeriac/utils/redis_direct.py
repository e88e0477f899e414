"""Per-thread Redis connections for hot paths, bypassing redis-py's client layer.

A command through ``redis.Redis`` checks a connection out of the pool, wraps the call in
its retry and event machinery and checks it back in: about 50 µs of Python per command,
more than a local round trip. A worker settles messages and stores results on a few
threads only, so each thread gets its own connection, made like the pool's, and commands
go straight onto it. Scripts are called by their SHA and sent whole if the server lost
its script cache (a restart).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

__all__ = ["DirectConnections"]


class DirectConnections:
    """One connection per thread (and per process: a fork gets fresh ones)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def send(self, *command: Any) -> Any:
        """Run one command and return its reply (a Redis error reply raises).

        Raises:
            redis.RedisError: the command failed, or the server could not be reached twice.
        """
        conn = self._connection()
        packed = conn.pack_command(*command)
        try:
            conn.connect()  # a no-op when connected; Sentinel's master lookup when not
            conn.send_packed_command(packed)
            return conn.read_response()
        except redis.exceptions.ConnectionError:
            # Most likely stale (the server restarted): one attempt on a fresh socket.
            conn.disconnect()
            conn.connect()
            conn.send_packed_command(packed)
            return conn.read_response()

    def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``script`` by its SHA; sent whole when the server does not have it."""
        try:
            return self.send("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return self.send("EVAL", script.script, len(keys), *keys, *args)

    def close(self) -> None:
        """Disconnect every thread's connection (each reconnects on its next command)."""
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            conn.disconnect()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.pid != os.getpid():
            pool = self._pool
            conn = self._local.conn = pool.connection_class(**pool.connection_kwargs)
            with self._lock:
                self._all.append(conn)
        return conn
