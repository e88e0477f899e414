"""Helpers for tests against the RabbitMQ server on 127.0.0.1:5672 (guest/guest).

Each test module works in a virtual host of its own, created here and deleted when it ends,
so queues, exchanges and dead letters of one module never meet another's.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from urllib.parse import quote

__all__ = ["close_connections", "connections", "delete_vhost", "new_vhost", "url_for"]

RABBITMQCTL_TIMEOUT = 60.0


def _ctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT,
        check=True,
    )
    return done.stdout


def new_vhost(label: str) -> str:
    """Create a fresh vhost that guest may use; returns its name."""
    name = f"celeriac-test-{label}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _ctl("add_vhost", name)
    _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return name


def delete_vhost(name: str) -> None:
    _ctl("delete_vhost", name)


def url_for(vhost: str, scheme: str = "amqp", port: int = 5672) -> str:
    return f"{scheme}://guest:guest@127.0.0.1:{port}/{quote(vhost, safe='')}"


def connections(vhost: str) -> list[tuple[str, str]]:
    """``(connection pid, client properties as printed)`` of every connection to ``vhost``
    (celeriac names its connections ``celeriac <role> pid=<pid> ...``)."""
    rows = _ctl("list_connections", "pid", "vhost", "client_properties")
    found = []
    for line in rows.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1] == vhost:
            found.append((parts[0], parts[2]))
    return found


def close_connections(vhost: str, *, containing: str = "") -> int:
    """Close (from the server side) the connections to ``vhost`` whose name contains
    ``containing``; returns how many. Only this test's vhost is ever touched."""
    closed = 0
    for pid, name in connections(vhost):
        if containing in name:
            _ctl("close_connection", pid, "closed by a celeriac test")
            closed += 1
    return closed
