"""The real Celery and celeriac sharing Redis: tasks, countdowns, results and restores.

Every test writes one module (``interop_tasks.py``) in its temporary directory that defines
the same tasks for a Celery app (``celery_app``) and a celeriac app (``celeriac_app``), each
with a broker *and* result backend on 127.0.0.1:6379 database 11, under a ``global_keyprefix``
of its own (deleted afterwards) and a queue of its own. Workers run as subprocesses:
``python -m celery -A interop_tasks:celery_app worker -P solo`` and ``python -m celeriac -A
interop_tasks:celeriac_app worker``. Each task run appends ``<runner> <event> <time>`` to a
marker file, so a test counts runs whatever the result backend says; results are checked
too (``celery-task-meta-<id>``, written by one library, read by the other).
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.brokers.test_conformance_redis import delete_prefixed
from tests.helpers import WorkerProcess, write_module

#: The database the interop tests may write to (and nothing else).
URL = "redis://127.0.0.1:6379/11"

TASKS = """
import os
import time
from pathlib import Path

import celery
import celeriac

URL = os.environ["INTEROP_URL"]
PREFIX = os.environ["INTEROP_PREFIX"]
QUEUE = os.environ["INTEROP_QUEUE"]
MARKS = Path(os.environ["INTEROP_MARKS"])
VISIBILITY = float(os.environ.get("INTEROP_VISIBILITY") or 0)
ETA_LAYOUT = os.environ.get("INTEROP_ETA_LAYOUT") or "celeriac"

broker_options = {"global_keyprefix": PREFIX}
if VISIBILITY:
    broker_options["visibility_timeout"] = VISIBILITY
settings = dict(
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)

celery_app = celery.Celery("interop", broker=URL, backend=URL)
celery_app.conf.update(
    settings,
    # Sweep for lapsed messages every second, as a short-visibility Celery fleet would.
    broker_transport_options={
        **broker_options, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
    },
    broker_connection_retry_on_startup=True,
)

celeriac_app = celeriac.Celery("interop", broker=URL, backend=URL)
celeriac_app.conf.update(
    settings, broker_transport_options={**broker_options, "eta_layout": ETA_LAYOUT}
)


def mark(runner, token, event):
    with open(MARKS / token, "a") as marks:
        marks.write(f"{runner} {event} {time.time()}\\n")


def define(app, runner):
    @app.task(name="interop.add")
    def add(x, y, token):
        mark(runner, token, "ran")
        return x + y

    @app.task(name="interop.slow")
    def slow(token, seconds):
        # The first run of a token sleeps (to be killed, or to outlive the lease).
        first = not (MARKS / token).exists()
        mark(runner, token, "started")
        if first:
            time.sleep(seconds)
        mark(runner, token, "done")
        return runner


define(celery_app, "celery")
define(celeriac_app, "celeriac")
"""


@dataclass
class Interop:
    """One test's private setup: directory, key prefix, queue, environment, apps."""

    directory: Path
    prefix: str
    queue: str
    marks: Path
    env: dict[str, str]
    module: ModuleType

    def runs(self, token: str) -> list[tuple[str, str, float]]:
        """(runner, event, time) for each line of the token's marker file."""
        path = self.marks / token
        if not path.exists():
            return []
        lines = [line.split() for line in path.read_text().splitlines()]
        return [(runner, event, float(at)) for runner, event, at in lines]

    def wait_for(self, token: str, event: str, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(e == event for _, e, _ in self.runs(token)) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{token}: {event!r} x{count} not seen in {self.runs(token)}")

    def celeriac_worker(self, *args: str) -> WorkerProcess:
        return WorkerProcess(
            "interop_tasks:celeriac_app", self.directory, "-Q", self.queue, *args, env=self.env
        )

    def celery_worker(self) -> CeleryWorker:
        return CeleryWorker("interop_tasks:celery_app", self.directory, self.queue, self.env)


class CeleryWorker:
    """A real ``celery worker`` subprocess (solo pool); use as a context manager.

    Waits for ``ready.`` in its log; stops with SIGTERM (SIGKILL if it lingers), by PID.
    """

    def __init__(self, app: str, cwd: Path, queue: str, env: dict[str, str]) -> None:
        self.cmd = [
            sys.executable, "-m", "celery", "-A", app, "worker", "-P", "solo", "-l", "info",
            "-Q", queue, "-n", f"interop-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.cwd = cwd
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self) -> CeleryWorker:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            self.kill()
            raise AssertionError(f"celery worker did not become ready:\n{self.output}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if " ready." in line:
                self._ready.set()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Interop:
    prefix = f"interop-{uuid.uuid4().hex[:10]}:"
    queue = f"interop-{uuid.uuid4().hex[:8]}"
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        "INTEROP_URL": URL,
        "INTEROP_PREFIX": prefix,
        "INTEROP_QUEUE": queue,
        "INTEROP_MARKS": str(marks),
        **extra,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = write_module(tmp_path, "interop_tasks", TASKS)
    spec = importlib.util.spec_from_file_location(f"interop_tasks_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import os

    return Interop(tmp_path, prefix, queue, marks, {**os.environ, **env}, module)


@pytest.fixture
def interop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Interop]:
    setup = _setup(tmp_path, monkeypatch)
    yield setup
    _teardown(setup)


def _teardown(setup: Interop) -> None:
    setup.module.celery_app.close()
    setup.module.celeriac_app.close()
    delete_prefixed(URL, setup.prefix)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


def test_celery_client_celeriac_worker(interop: Interop) -> None:
    celery_app: Any = interop.module.celery_app
    with interop.celeriac_worker("-P", "threads", "-c", "2"):
        by_name = celery_app.send_task("interop.add", args=(2, 3), kwargs={"token": "named"})
        by_delay = celery_app.tasks["interop.add"].delay(4, 5, token="delayed")
        by_priority = celery_app.tasks["interop.add"].apply_async(
            (6, 7), {"token": "prio"}, priority=5
        )
        # Results: stored by celeriac's backend, read by Celery's.
        assert by_name.get(timeout=20) == 5
        assert by_delay.get(timeout=20) == 9
        assert by_priority.get(timeout=20) == 13
    for token in ("named", "delayed", "prio"):
        assert [(runner, event) for runner, event, _ in interop.runs(token)] == [
            ("celeriac", "ran")
        ]


def test_celeriac_client_celery_worker(interop: Interop, raw: redis.Redis) -> None:
    celeriac_app: Any = interop.module.celeriac_app
    with interop.celery_worker():
        by_delay = celeriac_app.tasks["interop.add"].delay(2, 3, token="delayed")
        by_name = celeriac_app.send_task(
            "interop.add", args=(4, 5), kwargs={"token": "named"}, priority=7
        )
        # Results: stored by Celery's backend, read by celeriac's.
        assert by_delay.get(timeout=20) == 5
        assert by_name.get(timeout=20) == 9
    for token in ("delayed", "named"):
        assert [(runner, event) for runner, event, _ in interop.runs(token)] == [("celery", "ran")]
    assert raw.hlen(f"{interop.prefix}unacked") == 0  # Celery acked what celeriac published


def test_celeriac_countdown_reaches_a_celery_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eta_layout='celery': the countdown message goes to the list, as Celery sends it."""
    interop = _setup(tmp_path, monkeypatch, INTEROP_ETA_LAYOUT="celery")
    try:
        celeriac_app: Any = interop.module.celeriac_app
        with interop.celery_worker():
            sent = time.time()
            result = celeriac_app.tasks["interop.add"].apply_async(
                (1, 2), {"token": "later"}, countdown=2
            )
            assert result.get(timeout=30) == 3
        [(runner, event, at)] = interop.runs("later")
        assert (runner, event) == ("celery", "ran")
        assert at >= sent + 2 - 0.05
    finally:
        _teardown(interop)


def test_celery_countdown_waits_in_redis_for_a_celeriac_worker(
    interop: Interop, raw: redis.Redis
) -> None:
    """A Celery client's countdown: the celeriac worker hands it back to Redis until due."""
    celery_app: Any = interop.module.celery_app
    with interop.celeriac_worker("-P", "threads", "-c", "2"):
        sent = time.time()
        result = celery_app.tasks["interop.add"].apply_async((1, 2), {"token": "cd"}, countdown=3)
        delayed = f"{interop.prefix}_celeriac.delayed.{interop.queue}"
        unacked = f"{interop.prefix}unacked"

        def waiting_in_redis() -> bool:
            # Waiting broker-side: not in the worker, not held in unacked (the worker acks
            # the original after republishing it, on its settling thread).
            return raw.zcard(delayed) == 1 and raw.hlen(unacked) == 0

        deadline = time.monotonic() + 2.5
        while not waiting_in_redis() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_in_redis(), (raw.zcard(delayed), raw.hlen(unacked))
        assert result.get(timeout=20) == 3
    [(runner, event, at)] = interop.runs("cd")
    assert (runner, event) == ("celeriac", "ran")
    assert at >= sent + 3 - 0.05


def test_celery_worker_restores_a_killed_celeriac_workers_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interop = _setup(tmp_path, monkeypatch, INTEROP_VISIBILITY="2")
    try:
        celeriac_app: Any = interop.module.celeriac_app
        result = celeriac_app.tasks["interop.slow"].delay("held", 60)
        worker = interop.celeriac_worker("-P", "threads", "-c", "1").start()
        try:
            interop.wait_for("held", "started")
            worker.kill()  # SIGKILL with the message held (acks_late)
        finally:
            worker.kill()
        with interop.celery_worker():
            assert result.get(timeout=30) == "celery"
        runs = [(runner, event) for runner, event, _ in interop.runs("held")]
        assert runs == [("celeriac", "started"), ("celery", "started"), ("celery", "done")]
    finally:
        _teardown(interop)


def test_celeriac_worker_restores_a_killed_celery_workers_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interop = _setup(tmp_path, monkeypatch, INTEROP_VISIBILITY="2")
    try:
        celery_app: Any = interop.module.celery_app
        result = celery_app.tasks["interop.slow"].delay("held", 60)
        worker = interop.celery_worker().start()
        try:
            interop.wait_for("held", "started")
            worker.kill()
        finally:
            worker.kill()
        with interop.celeriac_worker("-P", "threads", "-c", "1"):
            assert result.get(timeout=30) == "celeriac"
        runs = [(runner, event) for runner, event, _ in interop.runs("held")]
        assert runs == [("celery", "started"), ("celeriac", "started"), ("celeriac", "done")]
    finally:
        _teardown(interop)


def test_live_celeriac_worker_keeps_a_long_task_from_celery_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Visibility timeout 2 s, a 7 s task: renewal keeps Celery's restore away."""
    interop = _setup(tmp_path, monkeypatch, INTEROP_VISIBILITY="2")
    try:
        celeriac_app: Any = interop.module.celeriac_app
        result = celeriac_app.tasks["interop.slow"].delay("long", 7)
        with interop.celeriac_worker("-P", "threads", "-c", "1"):
            interop.wait_for("long", "started")
            with interop.celery_worker():
                assert result.get(timeout=30) == "celeriac"
                time.sleep(1.5)  # a last restore sweep would have happened by now
        runs = [(runner, event) for runner, event, _ in interop.runs("long")]
        assert runs == [("celeriac", "started"), ("celeriac", "done")]
    finally:
        _teardown(interop)
