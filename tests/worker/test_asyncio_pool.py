"""The asyncio pool: ``async def`` tasks run natively and concurrently, sync tasks off the loop.

Process tests run on the embedded SQLite broker; those marked ``ON_BOTH`` on Redis too.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.worker.execution import Outcome
from celeriac.worker.pools.asyncio import AsyncioPool
from celeriac.worker.pools.base import Prepared
from tests.broker_choice import BROKERS, on_broker
from tests.helpers import WorkerProcess, run_python, write_module

TASKS = """
    import asyncio
    import os
    import time

    from celeriac import Celery

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("atasks", broker=URL, backend=URL)
    if URL:
        options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options

    @app.task
    async def nap(seconds):
        await asyncio.sleep(seconds)
        return seconds

    @app.task
    def snooze(seconds):
        time.sleep(seconds)
        return seconds

    @app.task(bind=True)
    async def whoami(self, delay):
        await asyncio.sleep(delay)
        return self.request.id

    @app.task
    async def broken():
        await asyncio.sleep(0)
        raise ValueError("async boom")
"""


#: Run a test on both brokers (the project fixture takes the broker as its parameter).
ON_BOTH = pytest.mark.parametrize("project", BROKERS, indirect=True)


@pytest.fixture
def project(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    write_module(tmp_path, "atasks", TASKS)
    with on_broker(request, monkeypatch):
        yield tmp_path


def _wait_for_count(worker: WorkerProcess, text: str, count: int, timeout: float) -> float:
    """Seconds until ``text`` has appeared ``count`` times in the worker's output (bounded)."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if worker.output.count(text) >= count:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{text!r} seen {worker.output.count(text)}/{count} times")


@ON_BOTH
def test_a_thousand_async_sleeps_overlap_on_one_worker(project: Path) -> None:
    """1,000 ``await asyncio.sleep(1)`` tasks, enqueued first, finish in under 3 s from ready."""
    run_python(project, "from atasks import nap\nfor _ in range(1000): nap.delay(1)")
    with WorkerProcess("atasks", project, "-P", "asyncio", "-c", "1000") as worker:
        elapsed = _wait_for_count(worker, "] succeeded in", 1000, timeout=30)
        assert elapsed < 3.0, f"1,000 async sleeps took {elapsed:.2f}s"
    assert ".> concurrency: 1000 (asyncio)" in worker.output
    assert "ERROR" not in worker.output


def test_sync_tasks_run_off_the_loop(project: Path) -> None:
    """Blocking sync bodies run in threads: async tasks beside them are not held up."""
    ids = run_python(
        project,
        "from atasks import nap, snooze\n"
        "print(' '.join([snooze.delay(1).id for _ in range(4)]"
        " + [nap.delay(1).id for _ in range(4)]))",
    ).split()
    with WorkerProcess("atasks", project, "-P", "asyncio", "-c", "8") as worker:
        elapsed = _wait_for_count(worker, "] succeeded in", 8, timeout=20)
        values = run_python(
            project, f"from atasks import app\nprint([app.AsyncResult(i).get(5) for i in {ids!r}])"
        )
    assert values.strip() == "[1, 1, 1, 1, 1, 1, 1, 1]"
    assert elapsed < 1.9, f"4 sync + 4 async one-second tasks took {elapsed:.2f}s"


@ON_BOTH
def test_request_context_and_failures_of_concurrent_coroutines(project: Path) -> None:
    """Each coroutine sees its own ``self.request``; an async exception is a FAILURE."""
    code = (
        "from atasks import whoami, broken, app\n"
        "rs = [whoami.delay(0.2 - n * 0.01) for n in range(20)]\n"
        "print(all(r.get(timeout=20) == r.id for r in rs))\n"
        "b = broken.delay()\n"
        "try:\n    b.get(timeout=20)\nexcept ValueError as exc:\n    print(b.state, exc)\n"
    )
    with WorkerProcess("atasks", project, "-P", "asyncio", "-c", "50") as worker:
        out = run_python(project, code)
    assert out.splitlines() == ["True", "FAILURE async boom"]
    assert re.search(r"Task atasks\.broken\[[^\]]+\] raised unexpected: ValueError", worker.output)


@ON_BOTH
def test_warm_shutdown_lets_running_coroutines_finish(project: Path) -> None:
    ids = run_python(
        project, "from atasks import nap\nprint(' '.join(nap.delay(1).id for _ in range(5)))"
    ).split()
    worker = WorkerProcess("atasks", project, "-P", "asyncio", "-c", "5").start()
    try:
        time.sleep(0.3)
        assert worker.stop() == 0
    finally:
        worker.kill()
    assert worker.output.count("] succeeded in") == 5
    states_out = run_python(
        project, f"from atasks import app\nprint({{app.AsyncResult(i).state for i in {ids!r}}})"
    )
    assert states_out.strip() == "{'SUCCESS'}"


# --- the pool on its own, with stand-in jobs ---------------------------------------------------


class _Job:
    """A stand-in job recording what the pool did with it."""

    def __init__(self, events: list[str], *, skip: bool = False, explode: bool = False) -> None:
        self.events = events
        self.skip = skip
        self.explode = explode
        self.lock = threading.Lock()

    def _note(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def begin(self) -> Prepared | None:
        self._note("begin")
        return None if self.skip else Prepared(_SyncTask(), None, [], {})  # type: ignore[arg-type]

    def run(self, prepared: Prepared) -> Outcome:
        if self.explode:
            raise RuntimeError("celeriac broke")
        time.sleep(0.05)
        return Outcome(states.SUCCESS, 1, None, 0.0)

    def finish(self, outcome: Outcome) -> None:
        self._note("finish")

    def fail(self, error: BaseException) -> None:
        self._note(f"fail {error}")


class _SyncTask:
    def run(self) -> Any:
        return None


def test_stop_waits_for_every_job_and_reports_failures() -> None:
    events: list[str] = []
    pool = AsyncioPool(3)
    pool.start()
    for _ in range(6):
        pool.submit(_Job(events))
    pool.submit(_Job(events, skip=True))
    pool.submit(_Job(events, explode=True))
    pool.stop(wait=True)
    assert events.count("begin") == 8
    assert events.count("finish") == 6
    assert events.count("fail celeriac broke") == 1
