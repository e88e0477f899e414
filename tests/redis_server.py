"""A private ``redis-server`` for tests that stop, restart or reconfigure Redis.

The shared server on 127.0.0.1:6379 must never be restarted by a test; this one runs on a
free port in a temporary directory, is restartable on the same port (and with
``appendonly`` keeps its data across restarts), and is stopped by its PID.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

__all__ = ["RedisServer", "free_port", "private_redis", "private_sentinel"]

#: Longest wait for the server to answer PING after a start (seconds).
START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; :meth:`start`, :meth:`stop` and :meth:`restart` it.

    Args:
        directory: where its files (append-only file, log, socket) go.
        appendonly: persist every write, so data survives :meth:`restart`.
        unixsocket: also listen on ``directory/redis.sock`` (see :attr:`socket_path`).
        extra: more ``--option value`` arguments.
    """

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        unixsocket: bool = False,
        extra: Sequence[str] = (),
    ) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed")
        self.directory = directory
        self.port = free_port()
        self.socket_path = directory / "redis.sock" if unixsocket else None
        self.log_path = directory / "redis.log"
        self.args = [
            executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if self.socket_path is not None:
            self.args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.args += list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log_tail()}")
            try:
                client = self.client()
                try:
                    if client.ping():
                        return self
                finally:
                    client.close()
            except redis.RedisError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return "(no log)"


@contextmanager
def private_redis(
    directory: Path,
    *,
    appendonly: bool = False,
    unixsocket: bool = False,
    extra: Sequence[str] = (),
) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped when the block ends, whatever happens."""
    server = RedisServer(directory, appendonly=appendonly, unixsocket=unixsocket, extra=extra)
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def private_sentinel(directory: Path, master: RedisServer, name: str = "mymaster") -> Iterator[int]:
    """A Redis Sentinel watching ``master`` under ``name``; yields its port, stops it after."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    config = directory / f"sentinel-{port}.conf"  # Sentinel rewrites it: keep it writable
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {name} 127.0.0.1 {master.port} 1\n"
    )
    log = directory / f"sentinel-{port}.log"
    proc = subprocess.Popen(
        [executable, str(config), "--sentinel", "--logfile", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name):
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis sentinel did not start")
            time.sleep(0.05)
        client.close()
        yield port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
