"""What the event tests share: a project, a JSON monitor, a pinger and process readers.

A project directory holds ``proj.py`` (the app and its tasks; broker from ``EV_URL``, none:
the embedded SQLite file in the directory), ``mon.py`` (a monitor: ``app.events.Receiver``
printing every event as one JSON line) and ``ping.py`` (sends ``custom-ping`` events until
stopped, so a test knows when a monitor is listening). On Redis, everything lives under the
test's own ``global_keyprefix`` (deleted afterwards).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.brokers.test_conformance_redis import delete_prefixed
from tests.helpers import WorkerProcess, run_python, write_module

#: The Redis DB of the event tests (each project has a key prefix of its own in it).
REDIS_URL = "redis://127.0.0.1:6379/1"

__all__ = ["Lines", "Monitor", "Project", "make_project"]

PROJECT = """
import os
import time

from celeriac import Celery

URL = os.environ.get("EV_URL") or None
BACKEND = os.environ.get("EV_BACKEND", URL or "") or None
app = Celery("proj", broker=URL, backend=BACKEND)
if os.environ.get("EV_PREFIX"):
    app.conf.broker_transport_options = {"global_keyprefix": os.environ["EV_PREFIX"]}
    app.conf.result_backend_transport_options = {"global_keyprefix": os.environ["EV_PREFIX"]}
app.conf.task_default_queue = os.environ.get("EV_QUEUE", "celery")


@app.task
def add(x, y):
    return x + y


@app.task
def boom():
    raise ValueError("boom")


@app.task(bind=True)
def flaky(self):
    if self.request.retries < 1:
        raise self.retry(countdown=0, exc=KeyError("again"))
    return "done"


@app.task(bind=True)
def progress(self):
    self.send_event("task-progress", current=1, total=2)
    return "ok"


@app.task
def sleepy(seconds):
    time.sleep(seconds)
    return seconds
"""

MONITOR = """
import json
import sys

from proj import app


def show(event):
    print(json.dumps(event, default=str), flush=True)


try:
    app.events.Receiver(handlers={"*": show}).capture(timeout=float(sys.argv[1]))
except TimeoutError:
    pass
"""

PINGER = """
import time

from proj import app

with app.events.default_dispatcher() as dispatcher:
    for number in range(300):
        dispatcher.send("custom-ping", number=number)
        time.sleep(0.2)
"""


class Lines:
    """A subprocess whose output lines are collected by a thread; stopped by its PID."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, found: Callable[[str], bool], timeout: float = 20.0) -> str:
        """The first line ``found`` accepts (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no matching line within {timeout}s:\n{self.output[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Monitor(Lines):
    """``mon.py``: every event it receives, parsed."""

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def of_task(self, task_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events() if event.get("uuid") == task_id]

    def wait_count(self, type_: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The first ``count`` events of ``type_``, once that many came (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [event for event in self.events() if event.get("type") == type_]
            if len(found) >= count:
                return found[:count]
            time.sleep(0.05)
        raise AssertionError(f"not {count} {type_} within {timeout}s:\n{self.output[-4000:]}")

    def wait_event(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if matches(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no matching event within {timeout}s:\n{self.output[-4000:]}")


@dataclass
class Project:
    """One test's project directory and the environment its processes share."""

    path: Path
    env: dict[str, str]

    def full_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_RESULT_BACKEND", None)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        return env

    def worker(self, *args: str, **kwargs: Any) -> WorkerProcess:
        return WorkerProcess("proj", self.path, *args, env=self.env, **kwargs)

    def monitor(self, silence: float = 60.0) -> Monitor:
        cmd = [sys.executable, "mon.py", str(silence)]
        return Monitor(cmd, self.path, self.full_env())

    def process(self, *args: str) -> Lines:
        return Lines(list(args), self.path, self.full_env())

    def python(self, code: str) -> str:
        prelude = "import os\n" + "".join(
            f"os.environ[{key!r}] = {value!r}\n" for key, value in self.env.items()
        )
        return run_python(self.path, prelude + code).strip()

    def wait_listening(self, watcher: Lines, seen: Callable[[str], bool]) -> None:
        """Send ``custom-ping`` events until ``watcher`` shows one (it is subscribed)."""
        with self.process(sys.executable, "ping.py"):
            watcher.wait_for(seen, timeout=30.0)


@contextmanager
def project_on(broker: str, path: Path) -> Iterator[Project]:
    """A project on the embedded SQLite file or on Redis (``broker``), with a queue of its
    own; on Redis its keys are deleted afterwards."""
    env = {"EV_QUEUE": f"ev-{uuid.uuid4().hex[:8]}"}
    prefix = f"ev-{uuid.uuid4().hex[:8]}:"
    if broker == "redis":
        env.update(EV_URL=REDIS_URL, EV_PREFIX=prefix)
    try:
        yield make_project(path, env)
    finally:
        if broker == "redis":
            delete_prefixed(REDIS_URL, prefix)


def make_project(path: Path, env: dict[str, str]) -> Project:
    write_module(path, "proj", PROJECT)
    write_module(path, "mon", MONITOR)
    write_module(path, "ping", PINGER)
    return Project(path, env)


def is_ping(line: str) -> bool:
    return "custom-ping" in line or "custom ping" in line
