"""``--autoscale=MAX,MIN``: the pool grows under load and shrinks when idle, within bounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.worker.autoscale import Autoscaler, Scalable, parse_autoscale
from celeriac.worker.pools.threads import ThreadPool
from tests.broker_choice import BROKERS, on_broker
from tests.helpers import WorkerProcess, run_cli, run_python, write_module

TASKS = """
    import os
    import time

    from celeriac import Celery

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("stasks", broker=URL, backend=URL)
    if URL:
        options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options

    @app.task
    def snooze(seconds):
        time.sleep(seconds)
        return seconds
"""


@pytest.fixture
def project(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    write_module(tmp_path, "stasks", TASKS)
    with on_broker(request, monkeypatch):
        yield tmp_path


@pytest.mark.parametrize("project", BROKERS, indirect=True)
def test_worker_grows_under_load_and_shrinks_when_idle(project: Path) -> None:
    """Six 2 s tasks on ``--autoscale=6,2``: at 2 threads they would take 6 s."""
    run_python(project, "from stasks import snooze\nfor _ in range(6): snooze.delay(2)")
    env = {"AUTOSCALE_KEEPALIVE": "1"}
    with WorkerProcess("stasks", project, "--autoscale=6,2", "-P", "threads", env=env) as worker:
        started = time.monotonic()
        deadline = started + 20
        while worker.output.count("] succeeded in") < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        worker.wait_for_output("Scaling down 4 workers (6 -> 2).", timeout=10)
    assert worker.output.count("] succeeded in") == 6
    assert elapsed < 4.5, f"six 2 s tasks took {elapsed:.2f}s: the pool did not grow"
    assert "Scaling up 4 workers (2 -> 6)." in worker.output
    assert ".> concurrency: 2..6 (threads, autoscale)" in worker.output
    assert ".> prefetch:    24" in worker.output  # sized for MAX, or the pool could never grow


def test_a_pool_that_cannot_scale_is_a_clear_error(project: Path) -> None:
    done = run_cli(["-A", "stasks", "worker", "-P", "asyncio", "--autoscale=4,2"], project)
    assert done.returncode != 0
    assert "The asyncio pool cannot be autoscaled." in done.stderr


def test_bad_autoscale_values_are_refused(project: Path) -> None:
    done = run_cli(["-A", "stasks", "worker", "--autoscale=2,5"], project)
    assert done.returncode != 0
    assert "MAX (2) must not be below MIN (5)" in done.stderr


@pytest.mark.parametrize(
    ("value", "expected"), [("10,3", (10, 3)), ("10", (10, 1)), ("4,0", (4, 1)), (" 8, 2", (8, 2))]
)
def test_parse_autoscale(value: str, expected: tuple[int, int]) -> None:
    assert parse_autoscale(value) == expected


@pytest.mark.parametrize("value", ["", "x,1", "3,y", "1,2"])
def test_parse_autoscale_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_autoscale(value)


# --- the decision, with a stand-in pool and a hand-turned clock --------------------------------


class _FakePool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.waiting = 0

    def grow(self, n: int) -> None:
        self.size += n

    def shrink(self, n: int) -> None:
        self.size -= n


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scaler(pool: _FakePool, clock: _Clock) -> Autoscaler:
    return Autoscaler(pool, max_size=6, min_size=2, keepalive=5.0, clock=clock)


def test_grows_to_cover_the_work_but_never_beyond_max() -> None:
    pool, clock = _FakePool(2), _Clock()
    scaler = _scaler(pool, clock)
    pool.busy, pool.waiting = 2, 1
    scaler.tick()
    assert pool.size == 3
    pool.busy, pool.waiting = 3, 40
    scaler.tick()
    assert pool.size == 6
    scaler.tick()
    assert pool.size == 6


def test_shrinks_only_after_the_keepalive_and_never_below_min() -> None:
    pool, clock = _FakePool(6), _Clock()
    scaler = _scaler(pool, clock)
    pool.busy = 3
    scaler.tick()
    clock.now = 4.9
    scaler.tick()
    assert pool.size == 6  # still within the keepalive
    clock.now = 5.0
    scaler.tick()
    assert pool.size == 3  # down to the work, not further
    pool.busy = 0
    clock.now = 5.1
    scaler.tick()
    clock.now = 10.2
    scaler.tick()
    assert pool.size == 2
    clock.now = 100.0
    scaler.tick()
    assert pool.size == 2


def test_a_burst_restarts_the_keepalive() -> None:
    pool, clock = _FakePool(6), _Clock()
    scaler = _scaler(pool, clock)
    scaler.tick()  # idle from t=0
    clock.now, pool.busy = 4.0, 6
    scaler.tick()  # fully busy again: the idle stretch is over
    clock.now, pool.busy = 6.0, 0
    scaler.tick()
    assert pool.size == 6
    clock.now = 11.0
    scaler.tick()
    assert pool.size == 2


def test_thread_pool_grows_and_shrinks() -> None:
    pool = ThreadPool(2)
    assert isinstance(pool, Scalable)
    pool.start()
    release = threading.Event()
    started = threading.Semaphore(0)

    class _Blocking:
        def begin(self) -> None:
            started.release()
            release.wait(10)
            return None

        def fail(self, error: BaseException) -> None:
            raise AssertionError(error)

    try:
        for _ in range(5):
            pool.submit(_Blocking())  # type: ignore[arg-type]
        assert all(started.acquire(timeout=5) for _ in range(2))
        assert (pool.size, pool.busy, pool.waiting) == (2, 2, 3)
        pool.grow(3)
        assert all(started.acquire(timeout=5) for _ in range(3))
        assert (pool.size, pool.busy, pool.waiting) == (5, 5, 0)
        release.set()
        pool.shrink(3)
        deadline = time.monotonic() + 5
        while sum(t.is_alive() for t in pool._threads) > 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sum(t.is_alive() for t in pool._threads) == 2
        assert (pool.size, pool.busy) == (2, 0)
    finally:
        release.set()
        pool.stop(wait=True)
