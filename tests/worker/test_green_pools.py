"""The gevent and eventlet pools, through real ``celeriac worker -P gevent|eventlet`` processes.

The process tests run on the embedded SQLite broker and on Redis: on Redis the broker and
backend connections themselves go through the patched socket module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.cli import _green_pool
from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.pools import pool_class
from tests.broker_choice import BROKERS, on_broker
from tests.helpers import WorkerProcess, run_cli, run_python, write_module

TASKS = """
    import os
    import socket
    import threading
    import time

    from celeriac import Celery

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("gtasks", broker=URL, backend=URL)
    if URL:
        options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options

    @app.task
    def snooze(seconds):
        time.sleep(seconds)
        return seconds

    @app.task
    def patched():
        # What a task sees: the standard library made cooperative before the app loaded.
        return [type(threading.Lock()).__module__, socket.socket.__module__]
"""

GREEN_POOLS = ["gevent", "eventlet"]


@pytest.fixture
def project(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    write_module(tmp_path, "gtasks", TASKS)
    with on_broker(request, monkeypatch):
        yield tmp_path


def _wait_for_count(worker: WorkerProcess, text: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if worker.output.count(text) >= count:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{text!r} seen {worker.output.count(text)}/{count} times")


@pytest.mark.parametrize("project", BROKERS, indirect=True)
@pytest.mark.parametrize("pool", GREEN_POOLS)
def test_a_hundred_blocking_sleeps_overlap(project: Path, pool: str) -> None:
    """100 ``time.sleep(0.5)`` tasks under ``-P POOL -c 100`` finish in under 3 s from ready."""
    ids = run_python(
        project,
        "from gtasks import snooze\nprint(' '.join(snooze.delay(0.5).id for _ in range(100)))",
    ).split()
    with WorkerProcess("gtasks", project, "-P", pool, "-c", "100", "-Q", "celery") as worker:
        elapsed = _wait_for_count(worker, "] succeeded in", 100, timeout=30)
        values = run_python(
            project,
            f"from gtasks import app\nprint(sum(app.AsyncResult(i).get(10) for i in {ids!r}))",
        )
    assert elapsed < 3.0, f"100 sleeps under {pool} took {elapsed:.2f}s"
    assert values.strip() == "50.0"
    assert f".> concurrency: 100 ({pool})" in worker.output
    assert "Warm shutdown" in worker.output and " stopped." in worker.output


@pytest.mark.parametrize("project", BROKERS, indirect=True)
@pytest.mark.parametrize("pool", GREEN_POOLS)
def test_tasks_run_in_a_patched_process(project: Path, pool: str) -> None:
    with WorkerProcess("gtasks", project, f"--pool={pool}", "-c", "4"):
        out = run_python(project, "from gtasks import patched\nprint(patched.delay().get(10))")
    assert pool in out, out


@pytest.mark.parametrize("pool", GREEN_POOLS)
def test_the_worker_pool_setting_cannot_patch_and_says_so(project: Path, pool: str) -> None:
    write_module(
        project, "configured", f"from celeriac import Celery\napp = Celery(worker_pool={pool!r})\n"
    )
    done = run_cli(["-A", "configured", "worker"], project)
    assert done.returncode != 0
    assert "needs a monkey-patched process" in done.stderr
    assert f"-P {pool}" in done.stderr


@pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated")  # its own notice, not ours
def test_an_unpatched_pool_refuses_to_start() -> None:
    for pool in GREEN_POOLS:
        with pytest.raises(ImproperlyConfigured, match="monkey-patched"):
            pool_class(pool)(4).start()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-A", "t", "worker", "-P", "gevent", "-c", "4"], "gevent"),
        (["-A", "t", "worker", "-Peventlet"], "eventlet"),
        (["-A", "t", "worker", "--pool=gevent"], "gevent"),
        (["-A", "t", "worker", "--pool", "eventlet"], "eventlet"),
        (["-A", "t", "worker", "-P", "threads"], None),
        (["-A", "t", "worker", "-P"], None),
        (["-A", "t", "call", "tasks.add"], None),
        (["-A", "worker", "worker", "-P", "gevent"], "gevent"),
        (["multi", "start", "w1", "-A", "t", "-P", "gevent"], None),
        (["multi", "start", "worker", "-P", "eventlet"], None),
    ],
)
def test_green_pool_is_found_on_the_command_line(argv: list[str], expected: str | None) -> None:
    assert _green_pool(argv) == expected
