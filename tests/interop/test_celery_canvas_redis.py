"""The real Celery and celeriac sharing Redis: the canvas (signatures, chain, group, chord).

Each test writes one module (``canvas_tasks.py``) in its temporary directory that defines the
same tasks for a Celery app (``celery_app``) and a celeriac app (``celeriac_app``), both with
broker and result backend on 127.0.0.1:6379 database 5, under a ``global_keyprefix`` of the
test's own (deleted afterwards) and two queues of its own: A (the default) and B. Workers
run as subprocesses (``celery worker -P solo`` and ``celeriac worker``); clients run here,
or, to see what a Celery user who never imports celeriac sees, in a subprocess.

Every task run appends ``<runner> <task name> <task id>`` to a marker file, so a test knows
which library ran each step of a workflow, and how many times.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

import celeriac
from tests.brokers.test_conformance_redis import delete_prefixed
from tests.helpers import WorkerProcess, run_python, write_module
from tests.interop.test_celery_redis import CeleryWorker

#: The database these tests may write to (and nothing else).
URL = "redis://127.0.0.1:6379/5"

TASKS = """
import os
from pathlib import Path

import celery
import celeriac

URL = os.environ["CANVAS_URL"]
PREFIX = os.environ["CANVAS_PREFIX"]
MARKS = Path(os.environ["CANVAS_MARKS"])

settings = dict(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=os.environ["CANVAS_QUEUE_A"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)

celery_app = celery.Celery("canvas", broker=URL, backend=URL)
celery_app.conf.update(settings, broker_connection_retry_on_startup=True)

celeriac_app = celeriac.Celery("canvas", broker=URL, backend=URL)
celeriac_app.conf.update(settings)


def define(app, runner):
    def mark(task, task_id=None):
        with open(MARKS, "a") as marks:
            marks.write(f"{runner} {task.name} {task_id or task.request.id}\\n")

    @app.task(name="canvas.add", bind=True)
    def add(self, x, y=0):
        mark(self)
        return x + y

    @app.task(name="canvas.mul", bind=True)
    def mul(self, x, y):
        mark(self)
        return x * y

    @app.task(name="canvas.tsum", bind=True)
    def tsum(self, values):
        mark(self)
        return sum(values)

    @app.task(name="canvas.collect", bind=True)
    def collect(self, values):
        mark(self)
        return values

    @app.task(name="canvas.errback", bind=True)
    def errback(self, failed_id):
        # Marked with the id it was given: the task whose failure it reports.
        mark(self, failed_id)

    @app.task(name="canvas.fail", bind=True)
    def fail(self, x):
        mark(self)
        raise ValueError(f"refusing {x}")


define(celery_app, "celery")
define(celeriac_app, "celeriac")
"""

#: A Celery user's client process: no celeriac import anywhere, tasks called by name.
PURE_CELERY_CHORD_ERROR = """
import os, sys
import celery
from celery.exceptions import ChordError

url, prefix = os.environ["CANVAS_URL"], os.environ["CANVAS_PREFIX"]
queue = os.environ["CANVAS_QUEUE_A"]
app = celery.Celery("canvas", broker=url, backend=url)
app.conf.update(
    broker_transport_options={"global_keyprefix": prefix},
    result_backend_transport_options={"global_keyprefix": prefix},
    task_default_queue=queue,
)
header = [app.signature("canvas.add", (1, 1)), app.signature("canvas.fail", (2,))]
result = celery.chord(header, app=app)(app.signature("canvas.tsum"))
try:
    result.get(timeout=30, follow_parents=False)
except ChordError as exc:
    print("ChordError", exc)
except Exception as exc:
    print("other", type(exc).__module__, type(exc).__qualname__, exc)
assert "celeriac" not in sys.modules
"""

#: A celeriac user's client process: Celery never imported, tasks called by name.
PURE_CELERIAC_CHORD_ERROR = """
import os, sys
import celeriac
from celeriac.exceptions import ChordError

url, prefix = os.environ["CANVAS_URL"], os.environ["CANVAS_PREFIX"]
queue = os.environ["CANVAS_QUEUE_A"]
app = celeriac.Celery("canvas", broker=url, backend=url)
app.conf.update(
    broker_transport_options={"global_keyprefix": prefix},
    result_backend_transport_options={"global_keyprefix": prefix},
    task_default_queue=queue,
)
header = [app.signature("canvas.add", (1, 1)), app.signature("canvas.fail", (2,))]
result = celeriac.chord(header, app=app)(app.signature("canvas.tsum"))
try:
    result.get(timeout=30, follow_parents=False)
except ChordError as exc:
    print("ChordError", exc)
except Exception as exc:
    print("other", type(exc).__module__, type(exc).__qualname__, exc)
assert "celery" not in sys.modules
"""


@dataclass
class Canvas:
    """One test's private setup: directory, key prefix, two queues, environment, apps."""

    directory: Path
    prefix: str
    queue_a: str
    queue_b: str
    marks: Path
    env: dict[str, str]
    module: ModuleType

    @property
    def celery_app(self) -> Any:
        return self.module.celery_app

    @property
    def celeriac_app(self) -> Any:
        return self.module.celeriac_app

    def runs(self) -> list[tuple[str, str, str]]:
        """(runner, task name, task id) for each task run so far."""
        if not self.marks.exists():
            return []
        lines = [line.split() for line in self.marks.read_text().splitlines()]
        return [(runner, name, task_id) for runner, name, task_id in lines]

    def runner_of(self, task_id: str) -> list[str]:
        """Who ran the task with this id (one entry per run)."""
        return [runner for runner, _, ran in self.runs() if ran == task_id]

    def celeriac_worker(self, queue: str) -> WorkerProcess:
        return WorkerProcess(
            "canvas_tasks:celeriac_app",
            self.directory,
            "-Q",
            queue,
            "-P",
            "threads",
            "-c",
            "2",
            env=self.env,
        )

    def celery_worker(self, queue: str) -> CeleryWorker:
        return CeleryWorker("canvas_tasks:celery_app", self.directory, queue, self.env)

    def chord_keys(self, raw: redis.Redis, group_id: str) -> dict[str, Any]:
        """The chord counter's keys that exist now (``.j``, ``.t``, ``.s``)."""
        base = f"{self.prefix}celery-taskset-meta-{group_id}"
        return {
            suffix: raw.type(base + suffix)
            for suffix in (".j", ".t", ".s")
            if raw.exists(base + suffix)
        }


@pytest.fixture
def canvas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Canvas]:
    setup = _setup(tmp_path, monkeypatch)
    yield setup
    setup.celery_app.close()
    setup.celeriac_app.close()
    delete_prefixed(URL, setup.prefix)


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Canvas:
    prefix = f"canvas-{uuid.uuid4().hex[:10]}:"
    queue_a = f"canvas-a-{uuid.uuid4().hex[:8]}"
    queue_b = f"canvas-b-{uuid.uuid4().hex[:8]}"
    marks = tmp_path / "marks"
    env = {
        "CANVAS_URL": URL,
        "CANVAS_PREFIX": prefix,
        "CANVAS_QUEUE_A": queue_a,
        "CANVAS_QUEUE_B": queue_b,
        "CANVAS_MARKS": str(marks),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = write_module(tmp_path, "canvas_tasks", TASKS)
    spec = importlib.util.spec_from_file_location(f"canvas_tasks_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Canvas(tmp_path, prefix, queue_a, queue_b, marks, {**os.environ, **env}, module)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


def _celery() -> Any:
    """The real ``celery`` package (untyped: it ships no type information)."""
    return importlib.import_module("celery")


def _lib(app: Any) -> Any:
    """The canvas module that goes with an app: ``celery`` or ``celeriac``."""
    return celeriac if isinstance(app, celeriac.Celery) else _celery()


# --- 1. signature dicts ---------------------------------------------------------------------

#: Each construction, written once, made by either library: (lib, app) -> signature.
CONSTRUCTIONS: dict[str, Callable[[Any, Any], Any]] = {
    "s": lambda lib, app: app.tasks["canvas.add"].s(2, 2),
    "si": lambda lib, app: app.tasks["canvas.add"].si(1),
    "set": lambda lib, app: app.tasks["canvas.add"].s(1).set(countdown=5, queue="q"),
    "chain": lambda lib, app: lib.chain(
        app.tasks["canvas.add"].s(1, 1), app.tasks["canvas.mul"].s(2)
    ),
    "group": lambda lib, app: lib.group(
        app.tasks["canvas.add"].s(1, 1), app.tasks["canvas.add"].s(2, 2)
    ),
    "chord": lambda lib, app: lib.chord(
        [app.tasks["canvas.add"].s(1, 1)], app.tasks["canvas.tsum"].s()
    ),
    "chunks": lambda lib, app: app.tasks["canvas.add"].chunks([(1, 2), (3, 4), (5, 6)], 2),
    "map": lambda lib, app: app.tasks["canvas.add"].map([1, 2, 3]),
    "starmap": lambda lib, app: app.tasks["canvas.add"].starmap([(1, 2), (3, 4)]),
}

#: Justified difference: celeriac tags the map/starmap/chunks dicts with a ``subtask_type``
#: (``xmap``, ``xstarmap``, ``chunks``) where Celery leaves None, so celeriac rebuilds the
#: workflow class from the wire. Celery registers its classes under these same names, so it
#: reads the tagged dict back as its own construction (asserted below).
TAGGED = {"map": "xmap", "starmap": "xstarmap", "chunks": "chunks"}


def _wire(sig: Any) -> dict[str, Any]:
    """A signature as it crosses the wire (tuples become lists)."""
    value: dict[str, Any] = json.loads(json.dumps(sig))
    return value


@pytest.mark.parametrize(
    "name",
    list(CONSTRUCTIONS),
)
def test_signature_dicts_match_celery(canvas: Canvas, name: str) -> None:
    celery = _celery()
    build = CONSTRUCTIONS[name]
    theirs = _wire(build(celery, canvas.celery_app))
    ours = _wire(build(celeriac, canvas.celeriac_app))

    # Each side rebuilds the other's dict: celeriac keeps Celery's dict as it is, and Celery
    # reads celeriac's dict as the very signature its own construction makes.
    assert _wire(celeriac.signature(theirs, app=canvas.celeriac_app)) == theirs
    assert _wire(celeriac.Signature.from_dict(theirs, app=canvas.celeriac_app)) == theirs
    assert _wire(celery.signature(ours, app=canvas.celery_app)) == theirs
    assert _wire(celery.Signature.from_dict(ours, app=canvas.celery_app)) == theirs
    # And celeriac reads its own dict back unchanged.
    assert _wire(celeriac.signature(ours, app=canvas.celeriac_app)) == ours

    if name in TAGGED:
        assert ours["subtask_type"] == TAGGED[name]
        ours["subtask_type"] = None
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


# --- 2 and 3. one library's client, the other's worker --------------------------------------


def _tasks(app: Any) -> tuple[Any, Any, Any]:
    return app.tasks["canvas.add"], app.tasks["canvas.mul"], app.tasks["canvas.tsum"]


def _size_key(canvas: Canvas, group_id: str) -> str:
    return f"{canvas.prefix}celery-taskset-meta-{group_id}.s"


def test_celery_client_canvas_on_celeriac_worker(canvas: Canvas, raw: redis.Redis) -> None:
    celery = _celery()
    add, mul, tsum = _tasks(canvas.celery_app)
    # Sent before any worker runs, to see the header size Celery's client sets in Redis.
    chord_result = celery.chord(celery.group(add.s(i, i) for i in range(5)))(tsum.s())
    group_id = chord_result.parent.id
    assert raw.get(_size_key(canvas, group_id)) == b"5"
    with canvas.celeriac_worker(canvas.queue_a):
        chained = celery.chain(add.s(4, 6) | mul.s(3))()
        grouped = celery.group(add.s(i, i) for i in range(4))()
        # Results: stored by celeriac's worker, read by Celery's client.
        assert chained.get(timeout=30) == 30
        assert chained.parent.get(timeout=30) == 10
        assert grouped.get(timeout=30) == [0, 2, 4, 6]
        # The celeriac worker completed the chord on the counter Celery's client set up.
        assert chord_result.get(timeout=30) == 20
    assert {runner for runner, _, _ in canvas.runs()} == {"celeriac"}
    assert len(canvas.runs()) == 2 + 4 + 5 + 1
    assert canvas.chord_keys(raw, group_id) == {}


def test_celeriac_client_canvas_on_celery_worker(canvas: Canvas, raw: redis.Redis) -> None:
    add, mul, tsum = _tasks(canvas.celeriac_app)
    chord_result = celeriac.chord(celeriac.group(add.s(i, i) for i in range(5)))(tsum.s())
    group_id = chord_result.parent.id
    assert raw.get(_size_key(canvas, group_id)) == b"5"
    with canvas.celery_worker(canvas.queue_a):
        chained = celeriac.chain(add.s(4, 6) | mul.s(3))()
        grouped = celeriac.group(add.s(i, i) for i in range(4))()
        # Results: stored by Celery's worker, read by celeriac's client.
        assert chained.get(timeout=30) == 30
        assert chained.parent.get(timeout=30) == 10
        assert grouped.get(timeout=30) == [0, 2, 4, 6]
        # Celery's worker completed the chord on the counter celeriac's client set up.
        assert chord_result.get(timeout=30) == 20
    assert {runner for runner, _, _ in canvas.runs()} == {"celery"}
    assert len(canvas.runs()) == 2 + 4 + 5 + 1
    assert canvas.chord_keys(raw, group_id) == {}


@pytest.mark.parametrize("client", ["celery", "celeriac"])
def test_built_in_workflows_run_on_the_other_worker(canvas: Canvas, client: str) -> None:
    """chunks, map, starmap (Celery's ``celery.*`` built-in tasks) and a chain into a chord."""
    app = canvas.celery_app if client == "celery" else canvas.celeriac_app
    lib = _lib(app)
    add, mul, tsum = _tasks(app)
    worker = (
        canvas.celeriac_worker(canvas.queue_a)
        if client == "celery"
        else canvas.celery_worker(canvas.queue_a)
    )
    with worker:
        chunked = add.chunks([(i, i) for i in range(5)], 2)()
        mapped = add.map([1, 2, 3]).delay()
        starmapped = add.starmap([(1, 2), (3, 4)]).delay()
        # A group followed by a task in a chain is a chord, fed by the step before it.
        into_chord = lib.chain(add.s(1, 1), lib.group(add.s(10), mul.s(10)), tsum.s())()
        assert chunked.get(timeout=30) == [[0, 2], [4, 6], [8]]
        assert mapped.get(timeout=30) == [1, 2, 3]
        assert starmapped.get(timeout=30) == [3, 7]
        assert into_chord.get(timeout=30) == 12 + 20
    other = "celeriac" if client == "celery" else "celery"
    assert {runner for runner, _, _ in canvas.runs()} == {other}


# --- 4 and 5. workflows that cross from one library's worker to the other's ------------------


@pytest.mark.parametrize("client", ["celery", "celeriac"])
def test_chain_crosses_between_workers(canvas: Canvas, client: str) -> None:
    """Step 1 on celeriac (queue A), step 2 on Celery (queue B), step 3 on celeriac again."""
    app = canvas.celery_app if client == "celery" else canvas.celeriac_app
    add, mul, _ = _tasks(app)
    a, b = canvas.queue_a, canvas.queue_b
    with canvas.celeriac_worker(a), canvas.celery_worker(b):
        steps = _lib(app).chain(
            add.s(1, 1).set(queue=a), mul.s(3).set(queue=b), add.s(4).set(queue=a)
        )
        result = steps()
        assert result.get(timeout=30) == 10
    ids = [result.parent.parent.id, result.parent.id, result.id]
    assert [canvas.runner_of(task_id) for task_id in ids] == [
        ["celeriac"],
        ["celery"],
        ["celeriac"],
    ]


@pytest.mark.parametrize("client", ["celery", "celeriac"])
def test_chord_header_split_between_workers(canvas: Canvas, client: str) -> None:
    """Odd members on celeriac (queue A), even ones on Celery (queue B): one body, in order."""
    app = canvas.celery_app if client == "celery" else canvas.celeriac_app
    add = app.tasks["canvas.add"]
    collect = app.tasks["canvas.collect"]
    a, b = canvas.queue_a, canvas.queue_b
    header = [add.s(i, i).set(queue=a if i % 2 else b) for i in range(8)]
    with canvas.celeriac_worker(a), canvas.celery_worker(b):
        result = _lib(app).chord(header)(collect.s())
        assert result.get(timeout=30) == [2 * i for i in range(8)]
        time.sleep(1)  # a second completion would send the body again by now
    members = [member.id for member in result.parent.results]
    assert [canvas.runner_of(task_id) for task_id in members] == [
        ["celeriac"] if i % 2 else ["celery"] for i in range(8)
    ]
    assert [name for _, name, _ in canvas.runs()].count("canvas.collect") == 1
    assert len(canvas.runner_of(result.id)) == 1


# --- 6. errors -------------------------------------------------------------------------------


def test_celery_client_sees_chord_error_from_celeriac_worker(canvas: Canvas) -> None:
    celery = _celery()
    add, _, tsum = _tasks(canvas.celery_app)
    fail = canvas.celery_app.tasks["canvas.fail"]
    errback = canvas.celery_app.tasks["canvas.errback"]
    with canvas.celeriac_worker(canvas.queue_a):
        body = tsum.s().on_error(errback.s())
        result = celery.chord([add.s(1, 1), fail.s(2), add.s(3, 3)])(body)
        with pytest.raises(Exception) as raised:
            # follow_parents=False: the body's own failure, not the header member's ValueError
            # that Celery's get() re-raises first when it sees a failed parent.
            result.get(timeout=30, follow_parents=False)
        failed_id = result.parent.results[1].id
        assert result.parent.results[1].get(timeout=30, propagate=False).args == ("refusing 2",)
        deadline = time.monotonic() + 20
        while not canvas.runner_of(result.id) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert type(raised.value).__name__ == "ChordError"
    assert failed_id in str(raised.value)
    assert result.state == "FAILURE"
    assert "canvas.tsum" not in [name for _, name, _ in canvas.runs()]
    # The body's errback (a Celery-style one: it takes the failed task's id) ran once.
    assert [(r, name) for r, name, ran in canvas.runs() if ran == result.id] == [
        ("celeriac", "canvas.errback")
    ]


def test_pure_celery_client_catches_chord_error_from_celeriac_worker(canvas: Canvas) -> None:
    """A Celery user's process (no celeriac import) catches ``celery.exceptions.ChordError``."""
    with canvas.celeriac_worker(canvas.queue_a):
        output = run_python(canvas.directory, PURE_CELERY_CHORD_ERROR)
    assert output.startswith("ChordError "), output


def test_celeriac_client_sees_chord_error_from_celery_worker(canvas: Canvas) -> None:
    add, _, tsum = _tasks(canvas.celeriac_app)
    fail = canvas.celeriac_app.tasks["canvas.fail"]
    errback = canvas.celeriac_app.tasks["canvas.errback"]
    with canvas.celery_worker(canvas.queue_a):
        body = tsum.s().on_error(errback.s())
        result = celeriac.chord([add.s(1, 1), fail.s(2), add.s(3, 3)])(body)
        with pytest.raises(Exception) as raised:
            result.get(timeout=30, follow_parents=False)
        failed_id = result.parent.results[1].id
        deadline = time.monotonic() + 20
        while not canvas.runner_of(result.id) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert type(raised.value).__name__ == "ChordError"
    assert failed_id in str(raised.value)
    assert result.state == "FAILURE"
    assert "canvas.tsum" not in [name for _, name, _ in canvas.runs()]
    assert [(r, name) for r, name, ran in canvas.runs() if ran == result.id] == [
        ("celery", "canvas.errback")
    ]


def test_pure_celeriac_client_catches_chord_error_from_celery_worker(canvas: Canvas) -> None:
    """A celeriac user's process (Celery never imported) catches celeriac's ``ChordError``."""
    with canvas.celery_worker(canvas.queue_a):
        output = run_python(canvas.directory, PURE_CELERIAC_CHORD_ERROR)
    assert output.startswith("ChordError "), output
