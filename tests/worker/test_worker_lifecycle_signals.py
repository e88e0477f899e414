"""Worker signals, task logging, print redirection and the expired backlog, via the CLI worker.

The signal sequence and the expired backlog run on the embedded SQLite broker and on Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker_choice import BROKERS, on_broker
from tests.helpers import REPO_ROOT, WorkerProcess, write_module

SIGNALLED = """
    import json
    import os

    from celeriac import Celery, signals
    from celeriac.utils.log import get_task_logger

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("signalled", broker=URL, backend=URL)
    if URL:
        options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options
    logger = get_task_logger(__name__)
    MARKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "signals.jsonl")

    def record(name, **fields):
        with open(MARKER, "a") as handle:
            handle.write(json.dumps({"signal": name, **fields}) + "\\n")

    @signals.celeryd_init.connect
    def on_init(sender, instance, conf, options, **kwargs):
        record("celeryd_init", sender=sender)

    @signals.celeryd_after_setup.connect
    def on_setup(sender, instance, conf, **kwargs):
        record("celeryd_after_setup", sender=sender)

    @signals.worker_init.connect
    def on_worker_init(sender, **kwargs):
        record("worker_init")

    @signals.import_modules.connect
    def on_import(sender, **kwargs):
        record("import_modules")

    @signals.worker_ready.connect
    def on_ready(sender, **kwargs):
        record("worker_ready")

    @signals.worker_shutting_down.connect
    def on_shutting_down(sender, sig, how, exitcode, **kwargs):
        record("worker_shutting_down", sig=sig, how=how, exitcode=exitcode)

    @signals.worker_shutdown.connect
    def on_shutdown(sender, **kwargs):
        record("worker_shutdown")

    @app.task
    def chatty(x):
        logger.info("working on %s", x)
        print("printed by the task")
        return x
"""


@pytest.fixture
def broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The broker the test's processes share: SQLite, or Redis when parametrized so."""
    with on_broker(request, monkeypatch) as kind:
        yield kind


def _signals(project: Path) -> list[dict[str, object]]:
    path = project / "signals.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_worker_signals_task_logger_and_print_redirect(tmp_path: Path, broker: str) -> None:
    write_module(tmp_path, "signalled", SIGNALLED)
    with WorkerProcess("signalled", tmp_path, "-n", "sig@%h", "-P", "threads") as worker:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from signalled import chatty; print(chatty.delay(7).get(timeout=10))",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.strip() == "7", done.stderr
        worker.wait_for_output("printed by the task")
    names = [entry["signal"] for entry in _signals(tmp_path)]
    assert names == [
        "celeryd_init", "import_modules", "celeryd_after_setup", "worker_init", "worker_ready",
        "worker_shutting_down", "worker_shutdown",
    ]  # fmt: skip
    first = _signals(tmp_path)[0]
    assert str(first["sender"]).startswith("sig@")
    shutting_down = _signals(tmp_path)[5]
    assert (shutting_down["sig"], shutting_down["how"], shutting_down["exitcode"]) == (
        "SIGTERM",
        "Warm",
        0,
    )
    output = worker.output
    assert "signalled.chatty[" in output and "]: working on 7" in output  # the task format
    assert "WARNING/MainProcess] printed by the task" in output


def test_setup_logging_receiver_replaces_the_configuration(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "ownlogs",
        """
        import logging
        import os

        from celeriac import Celery, signals

        app = Celery("ownlogs")
        LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "own.log")

        @signals.setup_logging.connect
        def configure(loglevel, logfile, format, colorize, **kwargs):
            handler = logging.FileHandler(LOG)
            handler.setFormatter(logging.Formatter("OWN %(levelname)s %(message)s"))
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
    """,
    )
    with WorkerProcess("ownlogs", tmp_path, ready_marker="[tasks]") as worker:
        deadline = time.monotonic() + 10
        while " ready." not in _read(tmp_path / "own.log") and time.monotonic() < deadline:
            time.sleep(0.02)
    own = (tmp_path / "own.log").read_text()
    assert "OWN INFO" in own and " ready." in own
    assert "ready." not in worker.output.split("[tasks]")[-1]  # celeriac's handler was not set


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_expired_backlog_does_not_delay_fresh_tasks(tmp_path: Path, broker: str) -> None:
    """5,000 expired messages ahead of 10 fresh ones: the fresh ones finish promptly."""
    write_module(
        tmp_path,
        "backlog",
        """
        import os

        from celeriac import Celery

        URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
        app = Celery("backlog", broker=URL, backend=URL)
        if URL:
            options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
            app.conf.broker_transport_options = options
            app.conf.result_backend_transport_options = options

        @app.task
        def work(n):
            return n
    """,
    )
    fill = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import datetime as dt\n"
                "from backlog import app, work\n"
                "from celeriac.brokers.base import Outgoing\n"
                "from celeriac.protocol import build_task_message\n"
                "past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)\n"
                "items = [Outgoing('celery', build_task_message(name='backlog.work',"
                " task_id=f'old-{i}', args=[i], expires=past)) for i in range(5000)]\n"
                "app.broker.publish_many(items)\n"
                "print(' '.join(work.delay(n).id for n in range(10)))\n"
            ),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fill.returncode == 0, fill.stderr
    fresh = fill.stdout.split()
    with WorkerProcess("backlog", tmp_path, loglevel="WARNING", ready_marker="[tasks]"):
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "from backlog import app\n"
                    f"print(sorted(app.AsyncResult(i).get(timeout=30) for i in {fresh!r}))"
                ),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert done.stdout.strip() == str(list(range(10))), done.stderr
    print(f"fresh tasks done {elapsed:.2f}s after the worker started")
    assert elapsed < 5.0, f"fresh tasks took {elapsed:.2f}s behind the expired backlog"
    states = subprocess.run(
        [sys.executable, "-c", "from backlog import app; print(app.AsyncResult('old-4999').state)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert states.stdout.strip() == "REVOKED"


def test_task_types_are_checked_by_mypy(tmp_path: Path) -> None:
    snippet = tmp_path / "typed_use.py"
    snippet.write_text(
        "from typing import Any\n"
        "from celeriac import Celery, Task\n"
        "app = Celery('typed')\n"
        "@app.task\n"
        "def add(x: int, y: int) -> int:\n    return x + y\n"
        "@app.task(bind=True)\n"
        "def mul(self: Task[Any, Any], x: int, y: int) -> int:\n    return x * y\n"
        "good: int = add.delay(1, 2).get() + mul.delay(2, 3).get()\n"
        "add.delay('one', 2)\n"
        "mul.delay(1)\n"
        "bad: str = add.delay(1, 2).get()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, done.stdout
    assert 'incompatible type "str"; expected "int"' in errors[0]
    assert 'Missing positional argument "y"' in errors[1]
    assert 'variable has type "str"' in errors[2]
