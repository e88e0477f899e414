"""The prefork pool, end to end: real ``celeriac worker`` processes on SQLite and on Redis.

Every test runs on the embedded SQLite default; the crash, limit and shutdown cases run on
Redis too (``ON_BOTH``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker_choice import BROKERS, on_broker
from tests.helpers import WorkerProcess, run_python, write_module

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TASKS = """
    import os
    import time

    from celeriac import Celery, signals
    from celeriac.exceptions import SoftTimeLimitExceeded

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("tasks", broker=URL, backend=URL)
    options = {"visibility_timeout": 1.0}
    if URL:
        prefix = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        options.update(prefix)
        app.conf.result_backend_transport_options = prefix
    app.conf.update(broker_transport_options=options)
    HERE = os.path.dirname(os.path.abspath(__file__))

    class CustomError(Exception):
        pass

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}-{b}")

    def _note(name, text):
        with open(os.path.join(HERE, name), "a") as handle:
            handle.write(text + "\\n")

    @signals.worker_process_init.connect
    def _child_started(**kwargs):
        _note("children.log", f"init {os.getpid()}")

    @signals.worker_process_shutdown.connect
    def _child_stopped(pid, exitcode, **kwargs):
        _note("children.log", f"shutdown {pid} {exitcode}")

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def pid():
        return os.getpid()

    @app.task
    def divide(x, y):
        return x / y

    @app.task
    def custom():
        raise CustomError("it broke")

    @app.task
    def bad_exception():
        raise Unpicklable(1, 2)

    @app.task
    def bad_value():
        return lambda: None

    @app.task
    def nap(seconds):
        time.sleep(seconds)
        return os.getpid()

    @app.task(time_limit=1)
    def hang():
        time.sleep(10)

    def _until_soft_limit():
        try:
            for _ in range(200):
                time.sleep(0.05)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "not interrupted"

    @app.task(soft_time_limit=0.5)
    def soft_limited():
        return _until_soft_limit()

    @app.task
    def soft_unlimited():
        return _until_soft_limit()

    @app.task(soft_time_limit=0.5)
    def spin():
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pass
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "not interrupted"

    @app.task
    def doomed(name):
        _note(name, str(os.getpid()))
        time.sleep(30)

    @app.task(acks_late=True, reject_on_worker_lost=True)
    def doomed_once(name):
        path = os.path.join(HERE, name)
        if os.path.exists(path):
            return "second run"
        _note(name, str(os.getpid()))
        time.sleep(30)

    @app.task(acks_late=True)
    def late_nap(name, seconds):
        _note(name, str(os.getpid()))
        time.sleep(seconds)
        return "done"

    @app.task
    def hog():
        block = bytearray(200 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        return os.getpid()
"""


#: Run a test on both brokers (the project fixture takes the broker as its parameter).
ON_BOTH = pytest.mark.parametrize("project", BROKERS, indirect=True)


@pytest.fixture
def project(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    write_module(tmp_path, "tasks", TASKS)
    with on_broker(request, monkeypatch):
        yield tmp_path


def _python(project: Path, code: str, timeout: float = 60.0) -> str:
    return run_python(project, code, timeout).strip()


def _wait_for_file(path: Path, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), children first."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().split(") ")[-1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 100:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@ON_BOTH
def test_default_pool_is_prefork_and_results_come_back(project: Path) -> None:
    with WorkerProcess("tasks", project, "-c", "2") as worker:
        out = _python(
            project,
            "from tasks import add, divide, custom, pid, CustomError\n"
            "import os\n"
            "print(add.delay(2, 3).get(timeout=10))\n"
            "try:\n    divide.delay(1, 0).get(timeout=10)\n"
            "except ZeroDivisionError as exc:\n    print('zero')\n"
            "try:\n    custom.delay().get(timeout=10)\n"
            "except CustomError as exc:\n    print('custom', exc)\n"
            "print(pid.delay().get(timeout=10) != os.getpid())\n",
        )
    assert out.split("\n") == ["5", "zero", "custom it broke", "True"]
    assert "(prefork)" in worker.output
    assert "cannot enforce" not in worker.output


def test_unpicklable_results_become_clear_failures(project: Path) -> None:
    with WorkerProcess("tasks", project, "-P", "prefork", "-c", "1"):
        out = _python(
            project,
            "from tasks import bad_exception, bad_value, add\n"
            "for task in (bad_exception, bad_value):\n"
            "    r = task.delay()\n"
            "    try:\n        r.get(timeout=10)\n"
            "    except Exception as exc:\n        print(r.state, type(exc).__name__, exc)\n"
            "print(add.delay(1, 1).get(timeout=10))\n",
        )
    lines = out.split("\n")
    assert lines[0].startswith("FAILURE EncodeError") and "Unpicklable" in lines[0], out
    assert lines[1].startswith("FAILURE EncodeError"), out
    assert lines[2] == "2"


def test_two_children_run_two_sleeping_tasks_in_parallel(project: Path) -> None:
    with WorkerProcess("tasks", project, "-P", "processes", "-c", "2"):
        out = _python(
            project,
            "import time\nfrom tasks import nap\n"
            "t = time.monotonic()\n"
            "results = [nap.delay(1.5) for _ in range(2)]\n"
            "pids = {r.get(timeout=20) for r in results}\n"
            "print(len(pids), round(time.monotonic() - t, 2))\n",
        )
    distinct, elapsed = out.split()
    assert distinct == "2"
    assert float(elapsed) < 2.8, out


@ON_BOTH
def test_hard_time_limit_kills_and_replaces_the_child(project: Path) -> None:
    with WorkerProcess("tasks", project, "-c", "1") as worker:
        out = _python(
            project,
            "import time\nfrom tasks import hang, pid\n"
            "from celeriac.exceptions import TimeLimitExceeded\n"
            "before = pid.delay().get(timeout=10)\n"
            "r = hang.delay()\n"
            "t = time.monotonic()\n"
            "try:\n    r.get(timeout=20)\n"
            "except TimeLimitExceeded:\n    print('limit', r.state)\n"
            "print(round(time.monotonic() - t, 2))\n"
            "after = pid.delay().get(timeout=10)\n"
            "print(before != after)\n",
        )
        worker.wait_for_output("Hard time limit (1s) exceeded for tasks.hang[")
    limit, elapsed, changed = out.split("\n")
    assert limit == "limit FAILURE"
    assert 0.5 < float(elapsed) < 6.0, out
    assert changed == "True"


@pytest.mark.parametrize(
    ("args", "call"),
    [
        ((), "soft_limited.delay()"),
        ((), "soft_unlimited.apply_async(soft_time_limit=0.5)"),
        (("--soft-time-limit", "0.5"), "soft_unlimited.delay()"),
    ],
    ids=["per-task", "per-call", "global"],
)
def test_soft_time_limit_raises_inside_the_task(
    project: Path, args: tuple[str, ...], call: str
) -> None:
    with WorkerProcess("tasks", project, "-c", "1", *args) as worker:
        out = _python(
            project,
            "import time\nfrom tasks import soft_limited, soft_unlimited\n"
            f"t = time.monotonic()\nprint({call}.get(timeout=20))\n"
            "print(round(time.monotonic() - t, 2))\n",
        )
        worker.wait_for_output("Soft time limit (0.5s) exceeded for tasks.soft_")
    value, elapsed = out.split("\n")
    assert value == "cleaned up"
    assert float(elapsed) < 5.0


def test_soft_time_limit_under_the_threads_pool(project: Path) -> None:
    """Best effort there: a pure-Python loop is interrupted between bytecodes."""
    with WorkerProcess("tasks", project, "-P", "threads", "-c", "2") as worker:
        out = _python(project, "from tasks import spin\nprint(spin.delay().get(timeout=20))")
        worker.wait_for_output("Soft time limit (0.5s) exceeded for tasks.spin[")
    assert out == "cleaned up"


@ON_BOTH
def test_killed_child_fails_its_task_with_worker_lost(project: Path) -> None:
    marker = project / "doomed.pid"
    with WorkerProcess("tasks", project, "-c", "1") as worker:
        task_id = _python(
            project, f"from tasks import doomed\nprint(doomed.delay({marker.name!r}).id)"
        )
        child = int(_wait_for_file(marker))
        os.kill(child, signal.SIGKILL)
        out = _python(
            project,
            "from tasks import app, add\n"
            "from celeriac.exceptions import WorkerLostError\n"
            f"r = app.AsyncResult({task_id!r})\n"
            "try:\n    r.get(timeout=15)\n"
            "except WorkerLostError as exc:\n    print(r.state, 'lost')\n"
            "print(add.delay(2, 2).get(timeout=15))\n",
        )
        worker.wait_for_output("exited with 'signal 9 (SIGKILL)'")
    assert out.split("\n") == ["FAILURE lost", "4"]


@ON_BOTH
def test_killed_child_with_reject_on_worker_lost_runs_the_task_again(project: Path) -> None:
    marker = project / "once.pid"
    with WorkerProcess("tasks", project, "-c", "1") as worker:
        task_id = _python(
            project, f"from tasks import doomed_once\nprint(doomed_once.delay({marker.name!r}).id)"
        )
        os.kill(int(_wait_for_file(marker)), signal.SIGKILL)
        out = _python(
            project, f"from tasks import app\nprint(app.AsyncResult({task_id!r}).get(timeout=20))"
        )
        worker.wait_for_output("rejected: WorkerLostError")
    assert out == "second run"


def test_max_tasks_per_child_replaces_children(project: Path) -> None:
    with WorkerProcess("tasks", project, "-c", "1", "--max-tasks-per-child", "2"):
        out = _python(
            project,
            "from tasks import pid\nprint(*[pid.delay().get(timeout=10) for _ in range(6)])",
        )
    pids = out.split()
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5], pids
    assert len(set(pids)) == 3, pids


@ON_BOTH
def test_max_memory_per_child_replaces_the_child_after_its_task(project: Path) -> None:
    with WorkerProcess("tasks", project, "-c", "1", "--max-memory-per-child", "150000"):
        out = _python(
            project,
            "from tasks import pid, hog\n"
            "print(pid.delay().get(timeout=10), hog.delay().get(timeout=20),"
            " pid.delay().get(timeout=10))",
        )
    before, hog, after = out.split()
    assert before == hog  # the limit is checked after the task, not before
    assert after != hog


@ON_BOTH
def test_sigkill_of_the_whole_worker_loses_no_acks_late_task(project: Path) -> None:
    marker = project / "late.pid"
    first = WorkerProcess("tasks", project, "-c", "1")
    victims: list[int] = []
    try:
        first.start()
        task_id = _python(
            project, f"from tasks import late_nap\nprint(late_nap.delay({marker.name!r}, 3).id)"
        )
        _wait_for_file(marker)
        victims = [first.pid, *_descendants(first.pid)]
        _kill_all(victims)  # the worker, its fork server and its children, by pid
        first.kill()
        assert _wait_gone(victims) == []
        with WorkerProcess("tasks", project, "-c", "1"):
            out = _python(
                project,
                f"from tasks import app\nprint(app.AsyncResult({task_id!r}).get(timeout=30))",
            )
        assert out == "done"
    finally:
        _kill_all([pid for pid in victims if _alive(pid)])
        first.kill()


@ON_BOTH
def test_sigkill_of_the_whole_worker_with_default_acks_loses_the_running_task(
    project: Path,
) -> None:
    """Celery's default (ack on receipt): a task running when its worker is SIGKILLed is lost.

    The message was acknowledged before the task started, so no worker runs it again and its
    state stays PENDING (nothing was stored); the next worker serves fresh tasks as usual.
    ``acks_late=True`` is the setting that makes such a task survive (the test above).
    """
    marker = project / "early.pid"
    first = WorkerProcess("tasks", project, "-c", "1")
    victims: list[int] = []
    try:
        first.start()
        task_id = _python(
            project, f"from tasks import doomed\nprint(doomed.delay({marker.name!r}).id)"
        )
        _wait_for_file(marker)
        victims = [first.pid, *_descendants(first.pid)]
        _kill_all(victims)
        first.kill()
        assert _wait_gone(victims) == []
        with WorkerProcess("tasks", project, "-c", "1") as second:
            out = _python(
                project,
                "import time\nfrom tasks import app, add\n"
                "print(add.delay(2, 2).get(timeout=15))\n"
                "time.sleep(3)  # three leases (visibility_timeout=1) for a redelivery to show\n"
                f"print(app.AsyncResult({task_id!r}).state)",
            )
        assert out.split("\n") == ["4", "PENDING"]
        assert len(marker.read_text().split()) == 1  # it started once, in the killed worker
        assert "tasks.doomed[" not in second.output
    finally:
        _kill_all([pid for pid in victims if _alive(pid)])
        first.kill()


@ON_BOTH
def test_warm_shutdown_finishes_the_running_task_and_leaves_no_children(project: Path) -> None:
    marker = project / "warm.pid"
    worker = WorkerProcess("tasks", project, "-c", "2")
    children: list[int] = []
    try:
        worker.start()
        task_id = _python(
            project, f"from tasks import late_nap\nprint(late_nap.delay({marker.name!r}, 1.5).id)"
        )
        _wait_for_file(marker)
        children = _descendants(worker.pid)
        assert len(children) >= 3  # the fork server and two children
        assert worker.stop() == 0
        out = _python(
            project, f"from tasks import app\nprint(app.AsyncResult({task_id!r}).get(timeout=5))"
        )
        assert out == "done"
        assert _wait_gone(children) == []
        log = (project / "children.log").read_text().split("\n")
        started = {line.split()[1] for line in log if line.startswith("init ")}
        stopped = {line.split()[1] for line in log if line.startswith("shutdown ")}
        assert len(started) == 2 and started == stopped, log
    finally:
        worker.kill()
        _kill_all([pid for pid in children if _alive(pid)])


def test_in_process_worker_finds_the_app_by_its_main_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without -A, children import the app by ``app.main`` (here the tasks module's name)."""
    write_module(
        tmp_path,
        "inproc_tasks",
        """
        import os
        from celeriac import Celery

        app = Celery("inproc_tasks", broker="memory://", backend="memory://")

        @app.task
        def pid():
            return os.getpid()
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import importlib

    from celeriac.testing.worker import start_worker

    module = importlib.import_module("inproc_tasks")
    with start_worker(module.app, pool="prefork", concurrency=1, ready_timeout=60):
        child = module.pid.delay().get(timeout=20)
    assert child != os.getpid()
