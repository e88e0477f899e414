"""The servers the peers use: Redis (version) and RabbitMQ (a virtual host of our own).

Everything talks to 127.0.0.1 only. The RabbitMQ virtual host is created with ``rabbitmqctl``
when it is available to us, and deleted at the end of the run with everything in it; without
it the peers use "/" with their own queue names, which they delete after each run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

VHOST = "celeriac-bench"


def redis_version() -> str | None:
    """The running server's version, asked over the wire (``INFO server``)."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as conn:
            conn.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = conn.recv(65536).decode(errors="replace")
    except OSError:
        return None
    for line in reply.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return None


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> str | None:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def rabbitmq_version() -> str | None:
    out = _rabbitmqctl("version")
    return out.strip() if out else None


def open_vhost() -> str:
    """Create our virtual host (fresh) and return its name, or "/" when we cannot."""
    _rabbitmqctl("delete_vhost", VHOST)
    if _rabbitmqctl("add_vhost", VHOST) is None:
        return "/"
    if _rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*") is None:
        _rabbitmqctl("delete_vhost", VHOST)
        return "/"
    return VHOST


def close_vhost(vhost: str) -> None:
    if vhost == VHOST:
        _rabbitmqctl("delete_vhost", VHOST)
