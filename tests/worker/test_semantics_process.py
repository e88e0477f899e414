"""Task semantics through one real CLI worker process, on the embedded SQLite broker and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker_choice import delete_prefix
from tests.helpers import WorkerProcess, write_module

TASKS = """
    import os
    import time

    from celeriac import Celery, Task, signals
    from celeriac.contrib.abortable import AbortableTask
    from celeriac.exceptions import Ignore, Reject

    URL = os.environ.get("SEM_BROKER")  # None: the embedded SQLite file
    app = Celery("sem", broker=URL, backend=URL)
    if URL:
        prefix = os.environ["SEM_PREFIX"]
        app.conf.broker_transport_options = {"global_keyprefix": prefix}
        app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    app.conf.update(result_extended=True, task_track_started=True)
    HERE = os.path.dirname(os.path.abspath(__file__))

    class Flaky(Exception):
        pass

    def bump(name):
        path = os.path.join(HERE, name)
        count = int(open(path).read()) + 1 if os.path.exists(path) else 1
        with open(path, "w") as handle:
            handle.write(str(count))
        return count

    @app.task(bind=True, max_retries=3)
    def retried(self, key):
        if bump(key) < 3:
            raise self.retry(exc=Flaky("not yet"), countdown=0.1)
        return self.request.retries

    @app.task(autoretry_for=(Flaky,), retry_backoff=0.1, retry_jitter=False,
              retry_kwargs={"max_retries": 4})
    def auto(key):
        if bump(key) < 3:
            raise Flaky("transient")
        return "recovered"

    @app.task(rate_limit="20/s")
    def limited(n):
        return time.time()

    @app.task
    def slow(seconds):
        time.sleep(seconds)
        return "slow done"

    @app.task(bind=True, base=AbortableTask)
    def abortable(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.is_aborted():
                return "aborted"
            time.sleep(0.02)
        return "ran out"

    @app.task(bind=True, acks_late=True)
    def reject_once(self, key):
        if bump(key) == 1:
            raise Reject("later", requeue=True)
        return "second delivery"

    @app.task
    def ignored():
        raise Ignore()

    class Locked(Task):
        def __call__(self, *args, **kwargs):
            bump("lock-count")
            return super().__call__(*args, **kwargs)

    @app.task(base=Locked)
    def locked(x):
        return x * 2

    @app.task(bind=True)
    def progress(self):
        self.update_state(state="PROGRESS", meta={"done": 1})
        time.sleep(0.5)
        return "progressed"

    @app.task
    def echo(*args, **kwargs):
        return [list(args), kwargs]

    @signals.task_postrun.connect
    def count_postrun(sender=None, **kwargs):
        bump("postrun-count")
"""


#: Redis DB reserved for these tests; each run uses its own key prefix and deletes it after.
REDIS_URL = "redis://127.0.0.1:6379/9"


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp(f"semantics-{request.param}")
    write_module(directory, "sem", TASKS)
    env = _environment(request.param)
    (directory / "env.json").write_text(json.dumps(env))
    try:
        with WorkerProcess("sem", directory, "-c", "4", env=env):
            yield directory
    finally:
        if env:
            delete_prefix(env["SEM_PREFIX"], REDIS_URL)


def _environment(kind: str) -> dict[str, str]:
    if kind == "sqlite":
        return {}
    return {"SEM_BROKER": REDIS_URL, "SEM_PREFIX": f"sem-{uuid.uuid4().hex[:8]}:"}


def produce(project: Path, code: str, timeout: float = 60.0) -> str:
    env = {**os.environ, **json.loads((project / "env.json").read_text())}
    done = subprocess.run(
        [sys.executable, "-c", "from sem import *\n" + code],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_retry_with_countdown(project: Path) -> None:
    out = produce(project, "r = retried.delay('k-retry'); print(r.get(timeout=20), r.retries)")
    assert out == "2 2"


def test_autoretry_with_backoff(project: Path) -> None:
    assert produce(project, "print(auto.delay('k-auto').get(timeout=20))") == "recovered"


def test_rate_limit_spaces_runs(project: Path) -> None:
    out = produce(
        project,
        "rs = [limited.delay(n) for n in range(6)]\n"
        "times = sorted(r.get(timeout=20) for r in rs)\n"
        "print(round(times[-1] - times[0], 2))",
    )
    assert float(out) >= 0.2  # six slots 50 ms apart


def test_started_progress_and_extended_result(project: Path) -> None:
    out = produce(
        project,
        "import time\n"
        "r = progress.delay()\n"
        "seen = set()\n"
        "deadline = time.time() + 10\n"
        "while not r.ready() and time.time() < deadline:\n"
        "    seen.add(r.state)\n"
        "    time.sleep(0.01)\n"
        "print(r.get(timeout=10), 'PROGRESS' in seen, r.name, r.worker.startswith('celery@'))",
    )
    assert out == "progressed True sem.progress True"


def test_track_started_state(project: Path) -> None:
    out = produce(
        project,
        "import time\n"
        "r = slow.delay(1)\n"
        "deadline = time.time() + 10\n"
        "while r.state != 'STARTED' and time.time() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print(r.state, sorted(r.info))\n"
        "print(r.get(timeout=10))",
    )
    assert out.splitlines() == ["STARTED ['hostname', 'pid']", "slow done"]


def test_abort(project: Path) -> None:
    out = produce(
        project,
        "import time\n"
        "r = abortable.delay()\n"
        "deadline = time.time() + 10\n"
        "while r.state != 'STARTED' and time.time() < deadline:\n"
        "    time.sleep(0.01)\n"
        "r.abort()\n"
        "print(r.get(timeout=10))",
    )
    assert out == "aborted"


def test_reject_requeue_and_ignore(project: Path) -> None:
    out = produce(
        project,
        "import time\n"
        "print(reject_once.delay('k-reject').get(timeout=20))\n"
        "r = ignored.delay()\n"
        "time.sleep(0.5)\n"
        "print(r.state)",
    )
    # Ignore records nothing more: with track_started on, STARTED stays (as in Celery).
    assert out.splitlines() == ["second delivery", "STARTED"]


def test_overridden_call_and_postrun_signal(project: Path) -> None:
    before = _count(project, "postrun-count")
    assert produce(project, "print(locked.delay(21).get(timeout=10))") == "42"
    assert _count(project, "lock-count") >= 1
    assert _count(project, "postrun-count") > before


def test_arguments_round_trip(project: Path) -> None:
    out = produce(project, "print(echo.delay(1, 'two', three=[3]).get(timeout=10))")
    assert out == "[[1, 'two'], {'three': [3]}]"


def _count(project: Path, name: str) -> int:
    path = project / name
    return int(path.read_text()) if path.exists() else 0
