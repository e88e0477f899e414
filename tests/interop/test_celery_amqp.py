"""The real Celery and celeriac sharing RabbitMQ, in both directions, with rpc:// results.

The module works in a virtual host of its own (deleted afterwards). Its tasks module
defines the same tasks for a Celery app (``celery_app``) and a celeriac app
(``celeriac_app``), both on ``pyamqp://`` with ``result_backend = 'rpc://'``. Each run also
appends ``<runner> <value>`` to a marker file, so a test sees which side ran what.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import celeriac
from tests.amqp.rabbit import delete_vhost, new_vhost, url_for
from tests.helpers import WorkerProcess, run_python, write_module
from tests.interop.test_celery_redis import CeleryWorker

TASKS = """
import os
import time

import celery
import celeriac

URL = os.environ["INTEROP_URL"]
MARKS = os.environ["INTEROP_MARKS"]

celery_app = celery.Celery("interop", broker=URL, backend="rpc://")
celery_app.conf.update(task_default_queue="interop", broker_connection_retry_on_startup=True)
celeriac_app = celeriac.Celery("interop", broker=URL, backend="rpc://")
celeriac_app.conf.update(task_default_queue="interop")


def define(app, runner):
    @app.task(name="interop.add")
    def add(x, y):
        with open(MARKS, "a") as marks:
            marks.write(f"{runner} {x + y}\\n")
        return x + y

    @app.task(name="interop.when")
    def when():
        return time.time()

    @app.task(name="interop.fail")
    def fail():
        raise ValueError("nope")


define(celery_app, "celery")
define(celeriac_app, "celeriac")
"""


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    name = new_vhost("interop")
    yield name
    delete_vhost(name)


@pytest.fixture
def project(tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_module(tmp_path, "interop_tasks", TASKS)
    monkeypatch.setenv("INTEROP_URL", url_for(vhost, scheme="pyamqp"))
    monkeypatch.setenv("INTEROP_MARKS", str(tmp_path / "marks.txt"))
    return tmp_path


def _client(project: Path, code: str) -> str:
    return run_python(project, textwrap.dedent(code), timeout=90)


def _marks(project: Path) -> list[str]:
    path = project / "marks.txt"
    return path.read_text().splitlines() if path.exists() else []


def _celery_worker(project: Path) -> CeleryWorker:
    return CeleryWorker("interop_tasks:celery_app", project, "interop", dict(os.environ))


def test_celery_client_celeriac_worker(project: Path) -> None:
    with WorkerProcess("interop_tasks:celeriac_app", project, "-Q", "interop"):
        out = _client(
            project,
            """
            import time
            from interop_tasks import celery_app
            print(celery_app.send_task("interop.add", (2, 3)).get(timeout=30))
            sent = time.time()
            later = celery_app.send_task("interop.when", countdown=1)
            print(later.get(timeout=30) - sent >= 0.9)
            failed = celery_app.send_task("interop.fail")
            try:
                failed.get(timeout=30)
            except ValueError as exc:
                print("ValueError", exc)
            """,
        )
    assert out.split("\n")[:3] == ["5", "True", "ValueError nope"]
    assert _marks(project) == ["celeriac 5"]


def test_celeriac_client_celery_worker(project: Path) -> None:
    with _celery_worker(project):
        out = _client(
            project,
            """
            import time
            from interop_tasks import celeriac_app
            print(celeriac_app.send_task("interop.add", (4, 5)).get(timeout=30))
            sent = time.time()
            later = celeriac_app.send_task("interop.when", countdown=1)
            print(later.get(timeout=30) - sent >= 0.9)
            failed = celeriac_app.send_task("interop.fail")
            try:
                failed.get(timeout=30)
            except ValueError as exc:
                print("ValueError", exc)
            """,
        )
    assert out.split("\n")[:3] == ["9", "True", "ValueError nope"]
    assert _marks(project) == ["celery 9"]


def test_chain_from_celery_completes_on_celeriac(project: Path) -> None:
    if not hasattr(celeriac, "chain"):
        pytest.skip("celeriac.chain does not exist yet")
    with WorkerProcess("interop_tasks:celeriac_app", project, "-Q", "interop"):
        _client(
            project,
            """
            import celery
            from interop_tasks import celery_app
            add = celery_app.signature("interop.add")
            celery.chain(add.clone((1, 2)), add.clone((10,))).apply_async()
            """,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_marks(project)) < 2:
            time.sleep(0.1)
    assert _marks(project) == ["celeriac 3", "celeriac 13"]


def test_chain_from_celeriac_completes_on_celery(project: Path) -> None:
    if not hasattr(celeriac, "chain"):
        pytest.skip("celeriac.chain does not exist yet")
    with _celery_worker(project):
        _client(
            project,
            """
            import celeriac
            from interop_tasks import celeriac_app
            add = celeriac_app.signature("interop.add")
            celeriac.chain(add.clone((1, 2)), add.clone((10,))).apply_async()
            """,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_marks(project)) < 2:
            time.sleep(0.1)
    assert _marks(project) == ["celery 3", "celery 13"]
