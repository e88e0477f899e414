"""Remote control across libraries on Redis: Celery's CLI reaches a celeriac worker, and
celeriac's CLI reaches a Celery worker.

Both apps live in ``ctl_interop.py`` (written per test) on Redis database 6 under a key
prefix of the test's own, deleted afterwards; the mailbox channels carry the prefix too.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers.test_conformance_redis import delete_prefixed
from tests.helpers import WorkerProcess, run_cli, write_module

URL = "redis://127.0.0.1:6379/6"
HOST = socket.gethostname()

APPS = """
import os

import celery
import celeriac

URL = "{url}"
options = {{"global_keyprefix": "{prefix}"}}
celery_app = celery.Celery("ctl_interop", broker=URL)
celery_app.conf.update(broker_transport_options=options, task_default_queue="{queue}")
celeriac_app = celeriac.Celery("ctl_interop", broker=URL)
celeriac_app.conf.update(broker_transport_options=options, task_default_queue="{queue}")
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    prefix = f"ctl-interop-{uuid.uuid4().hex[:8]}:"
    queue = f"ctl-{uuid.uuid4().hex[:8]}"
    write_module(tmp_path, "ctl_interop", APPS.format(url=URL, prefix=prefix, queue=queue))
    yield tmp_path
    delete_prefixed(URL, prefix)


class CeleryWorker:
    """``celery worker -P solo`` as a subprocess, stopped by its pid."""

    def __init__(self, cwd: Path, name: str) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "ctl_interop:celery_app", "worker"]
        cmd += ["-P", "solo", "-l", "INFO", "-n", f"{name}@%h", "--without-mingle"]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if " ready." in line:
                self.ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def celery_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``celery`` command line, on the Celery app."""
    cmd = [sys.executable, "-m", "celery", "-A", "ctl_interop:celery_app", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_celery_cli_pings_a_celeriac_worker(project: Path) -> None:
    with WorkerProcess("ctl_interop:celeriac_app", project, "-P", "threads", "-n", "cc@%h"):
        done = celery_cli(project, "inspect", "ping", "-t", "2")
        assert done.returncode == 0, done.stderr
        assert f"->  cc@{HOST}: OK\n        pong\n" in done.stdout
        assert "1 node online." in done.stdout
        done = celery_cli(project, "inspect", "registered", "-t", "2", "-j")
        assert done.returncode == 0 and f'"cc@{HOST}": [' in done.stdout


def test_celeriac_cli_pings_a_celery_worker(project: Path) -> None:
    worker = CeleryWorker(project, "cw")
    try:
        assert worker.ready.wait(30), "".join(worker.lines)
        deadline = time.monotonic() + 20
        done = run_cli(["-A", "ctl_interop:celeriac_app", "inspect", "ping", "-t", "2"], project)
        while done.returncode != 0 and time.monotonic() < deadline:
            done = run_cli(["-A", "ctl_interop:celeriac_app", "inspect", "ping"], project)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"->  cw@{HOST}: OK\n        pong\n\n1 node online.\n"
        done = run_cli(["-A", "ctl_interop:celeriac_app", "status", "-t", "2"], project)
        assert done.stdout.endswith("1 node online.\n")
    finally:
        worker.stop()
