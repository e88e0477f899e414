"""The canvas through a real CLI worker process, on the embedded SQLite broker and on Redis.

Every example of the tutorials' canvas section and of Celery's canvas guide runs here the
way a user runs it: a ``celeriac worker`` subprocess and a separate producer process.
"""

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

    from celeriac import Celery, chain, chord, group, signature

    URL = os.environ.get("CANVAS_BROKER")  # None: the embedded SQLite file
    app = Celery("canvas", broker=URL, backend=URL)
    if URL:
        prefix = os.environ["CANVAS_PREFIX"]
        app.conf.broker_transport_options = {"global_keyprefix": prefix}
        app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    HERE = os.path.dirname(os.path.abspath(__file__))

    def note(name, text):
        with open(os.path.join(HERE, name), "a") as handle:
            handle.write(text + "\\n")

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def multiply(x, y):
        return x * y

    mul = multiply

    @app.task
    def tsum(numbers):
        return sum(numbers)

    @app.task
    def task1(x):
        return f"task1({x})"

    @app.task
    def task2(value):
        return f"task2({value})"

    @app.task
    def task3(value):
        return f"task3({value})"

    @app.task
    def callback_task(results):
        return ["callback", results]

    @app.task
    def fail(*args):
        raise ValueError("boom")

    @app.task
    def on_error(request, exc, traceback):
        note("errback", f"{request.id} {exc!r} {traceback is not None}")

    @app.task
    def on_error_id(task_id):
        note("errback-id", task_id)

    @app.task
    def remember(value, name):
        note(name, repr(value))
        return value

    @app.task(bind=True)
    def replaced(self, n):
        raise self.replace(add.s(n, n) | multiply.s(2))

    @app.task(bind=True)
    def replaced_by_group(self, n):
        raise self.replace(group(add.s(i, i) for i in range(n)))

    @app.task
    def identity(x):
        return x
"""

#: Redis DB reserved for these tests; each run uses its own key prefix and deletes it after.
REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp(f"canvas-{request.param}")
    write_module(directory, "canvas", TASKS)
    env = _environment(request.param)
    (directory / "env.json").write_text(json.dumps(env))
    try:
        with WorkerProcess("canvas", directory, "-c", "4", env=env):
            yield directory
    finally:
        if env:
            delete_prefix(env["CANVAS_PREFIX"], REDIS_URL)


def _environment(kind: str) -> dict[str, str]:
    if kind == "sqlite":
        return {}
    return {"CANVAS_BROKER": REDIS_URL, "CANVAS_PREFIX": f"canvas-{uuid.uuid4().hex[:8]}:"}


def produce(project: Path, code: str, timeout: float = 90.0) -> str:
    """Run producer code in its own process (``from canvas import *`` first); its stdout."""
    env = {**os.environ, **json.loads((project / "env.json").read_text())}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from canvas import *\nfrom celeriac import chain, chord, chunks, group, "
            "signature, xmap, xstarmap\nfrom celeriac.result import GroupResult\n" + code,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def read_note(project: Path, name: str, timeout: float = 15.0) -> list[str]:
    """The lines a task wrote to ``name`` (waiting, bounded, for the first one)."""
    import time

    path = project / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().splitlines()
        time.sleep(0.05)
    raise AssertionError(f"nothing was written to {name}")


# --- the tutorials' examples ------------------------------------------------------------------


def test_seed_chain(project: Path) -> None:
    out = produce(project, "print(chain(add.s(4, 6) | multiply.s(3))().get(timeout=20))")
    assert out == "30"


def test_seed_group(project: Path) -> None:
    out = produce(project, "print(group(add.s(i, i) for i in range(10))().get(timeout=20))")
    assert out == str([i + i for i in range(10)])


def test_seed_chord(project: Path) -> None:
    out = produce(
        project,
        "print(chord(group(task1.s(1), task1.s(2)))(callback_task.s()).get(timeout=20))",
    )
    assert out == "['callback', ['task1(1)', 'task1(2)']]"


def test_seed_three_step_chain(project: Path) -> None:
    out = produce(
        project,
        "r = chain(task1.s('a'), task2.s(), task3.s())()\n"
        "print(r.get(timeout=20)); print(r.parent.get(timeout=5)); "
        "print(r.parent.parent.get(timeout=5))",
    )
    assert out.splitlines() == ["task3(task2(task1(a)))", "task2(task1(a))", "task1(a)"]


def test_seed_group_of_three(project: Path) -> None:
    out = produce(project, "print(group(task1.s(1), task1.s(2), task1.s(3))().get(timeout=20))")
    assert out == "['task1(1)', 'task1(2)', 'task1(3)']"


# --- Celery's canvas guide --------------------------------------------------------------------


def test_partials_and_options(project: Path) -> None:
    out = produce(
        project,
        "partial = add.s(2)\n"
        "print(partial.delay(4).get(timeout=20))\n"
        "print(add.s(2, 2).set(countdown=0.2).apply_async().get(timeout=20))\n"
        "print(add.signature((2, 2), countdown=0.1).delay().get(timeout=20))\n"
        "print(~add.s(5, 5))",
    )
    assert out.splitlines() == ["6", "4", "4", "10"]


def test_immutable_signature_ignores_the_parent_result(project: Path) -> None:
    out = produce(project, "print((add.s(2, 2) | add.si(4, 4) | add.s(8))().get(timeout=20))")
    assert out == "16"


def test_link_callback(project: Path) -> None:
    out = produce(
        project,
        "import uuid\n"
        "cid = str(uuid.uuid4())\n"
        "r = add.apply_async((2, 2), link=add.s(16).set(task_id=cid))\n"
        "print(r.get(timeout=20), add.AsyncResult(cid).get(timeout=20))",
    )
    assert out == "4 20"


def test_group_result_api(project: Path) -> None:
    out = produce(
        project,
        "res = group(add.s(i, i) for i in range(10))()\n"
        "print(res.get(timeout=20))\n"
        "print(res.ready(), res.successful(), res.failed(), res.completed_count(), len(res))\n"
        "res.save()\n"
        "again = GroupResult.restore(res.id)\n"
        "print(again.id == res.id, again.join(timeout=5))",
    )
    lines = out.splitlines()
    assert lines[0] == str([i + i for i in range(10)])
    assert lines[1] == "True True False 10 10"
    assert lines[2] == f"True {[i + i for i in range(10)]}"


def test_group_followed_by_a_task_is_a_chord(project: Path) -> None:
    out = produce(
        project,
        "c = group(add.s(i, i) for i in range(10)) | tsum.s()\n"
        "print(type(c).__name__, c().get(timeout=20))",
    )
    assert out == "_chord 90"


def test_chord_with_body_argument_and_parent(project: Path) -> None:
    out = produce(
        project,
        "r = chord((add.s(i, i) for i in range(10)), tsum.s())()\n"
        "print(r.get(timeout=20), r.parent.get(timeout=5))",
    )
    assert out == f"90 {[i + i for i in range(10)]}"


def test_empty_chord_calls_the_body_with_an_empty_list(project: Path) -> None:
    assert produce(project, "print(chord([], tsum.s())().get(timeout=20))") == "0"


def test_map_starmap_chunks(project: Path) -> None:
    out = produce(
        project,
        "print(tsum.map([[1, 2], [3, 4]]).delay().get(timeout=20))\n"
        "print(add.starmap(zip(range(5), range(5))).delay().get(timeout=20))\n"
        "print(add.chunks(zip(range(10), range(10)), 4)().get(timeout=20))\n"
        "print(add.chunks(zip(range(4), range(4)), 2).group().apply_async().get(timeout=20))",
    )
    assert out.splitlines() == [
        "[3, 7]",
        "[0, 2, 4, 6, 8]",
        "[[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]",
        "[[0, 2], [4, 6]]",
    ]


# --- nesting ----------------------------------------------------------------------------------


def test_chain_into_a_group(project: Path) -> None:
    out = produce(
        project,
        "print(chain(add.s(1, 1), group(multiply.s(2), multiply.s(3)))().get(timeout=20))",
    )
    assert out == "[4, 6]"


def test_chain_with_a_group_then_a_task_becomes_a_chord(project: Path) -> None:
    out = produce(
        project,
        "print(chain(add.s(1, 1), group(multiply.s(2), multiply.s(3)), tsum.s())()"
        ".get(timeout=20))",
    )
    assert out == "10"


def test_chord_inside_a_chain_continues_after_its_body(project: Path) -> None:
    out = produce(
        project,
        "c = chain(add.s(1, 1), chord([multiply.s(2), multiply.s(3)], tsum.s()), add.s(100))\n"
        "print(c().get(timeout=20))",
    )
    assert out == "110"


def test_chains_inside_a_group_and_a_chord_header(project: Path) -> None:
    out = produce(
        project,
        "g = group(add.s(1, 1) | multiply.s(10), add.s(2, 2) | multiply.s(100))\n"
        "print(g().get(timeout=20))\n"
        "print(chord([add.s(1, 1) | multiply.s(10), add.s(2, 2)], tsum.s())().get(timeout=20))",
    )
    assert out.splitlines() == ["[20, 400]", "24"]


def test_nested_groups_in_a_chord_header_are_flattened(project: Path) -> None:
    out = produce(
        project,
        "h = group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3))\n"
        "print(chord(h, callback_task.s())().get(timeout=20))",
    )
    assert out == "['callback', [2, 4, 6]]"


def test_replace_with_a_chain_keeps_the_task_id(project: Path) -> None:
    out = produce(
        project,
        "r = replaced.delay(5)\n"
        "print(r.get(timeout=20))\n"
        "print((replaced.s(1) | add.s(1))().get(timeout=20))",
    )
    assert out.splitlines() == ["20", "5"]


def test_replace_with_a_group(project: Path) -> None:
    out = produce(project, "print(replaced_by_group.delay(4).get(timeout=20))")
    assert out == "[0, 2, 4, 6]"


# --- errors -----------------------------------------------------------------------------------


def test_failing_chain_link_stops_the_chain_and_runs_its_errback(project: Path) -> None:
    out = produce(
        project,
        "c = chain(add.s(1, 1), fail.s(), remember.s('never-chain'))\n"
        "c.link_error(on_error.s())\n"
        "r = c.apply_async()\n"
        "try:\n"
        "    r.get(timeout=20)\n"
        "except ValueError as exc:\n"
        "    print('raised', exc)\n"
        "print(r.state, r.parent.state, r.parent.parent.get(timeout=5))\n"
        "print(r.parent.id)",
    )
    lines = out.splitlines()
    assert lines[0] == "raised boom"
    assert lines[1] == "FAILURE FAILURE 2"
    failed_id = lines[2]
    errback = read_note(project, "errback")
    assert any(line.startswith(f"{failed_id} ValueError('boom') True") for line in errback)
    assert not (project / "never-chain").exists()


def test_old_style_errback_gets_the_task_id(project: Path) -> None:
    out = produce(
        project,
        "r = fail.apply_async(link_error=on_error_id.s())\n"
        "try:\n"
        "    r.get(timeout=20)\n"
        "except ValueError:\n"
        "    pass\n"
        "print(r.id)",
    )
    assert out in read_note(project, "errback-id")


def test_failing_chord_header_fails_the_body_with_chord_error(project: Path) -> None:
    out = produce(
        project,
        "body = remember.s('never-chord-body')\n"
        "body.link_error(on_error.s())\n"
        "header = [add.s(1, 1), fail.s(), add.s(2, 2)]\n"
        "r = chord(header, body)()\n"
        "try:\n"
        "    r.get(timeout=20)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "print(r.id, r.parent.results[1].id)",
    )
    first, ids = out.splitlines()
    body_id, failed_id = ids.split()
    assert first == f"ChordError Dependency {failed_id} raised ValueError('boom')"
    errback = read_note(project, "errback")
    assert any(line.startswith(f"{body_id} ChordError(") for line in errback)
    assert not (project / "never-chord-body").exists()


# --- scale ------------------------------------------------------------------------------------


def test_chord_of_a_thousand_tasks(project: Path) -> None:
    out = produce(
        project,
        "r = chord(add.s(i, i) for i in range(1000))(tsum.s())\nprint(r.get(timeout=60))",
    )
    assert out == str(sum(2 * i for i in range(1000)))


def test_group_of_a_thousand_tasks_is_sent_in_one_batch(project: Path) -> None:
    out = produce(
        project,
        "res = group(add.s(i, 1) for i in range(1000)).apply_async()\n"
        "values = res.get(timeout=60)\n"
        "print(len(values), values[:3], values[-1])",
    )
    assert out == "1000 [1, 2, 3] 1000"


# --- more of Celery's canvas guide ------------------------------------------------------------


def test_guide_signature_by_name_and_clone(project: Path) -> None:
    out = produce(
        project,
        "s = signature('canvas.add', args=(2, 2), countdown=0.1)\n"
        "print(s.args, s.kwargs, s.options, s.delay().get(timeout=20))\n"
        "print(add.s(2).clone(args=(4,)).delay().get(timeout=20))",
    )
    assert out.splitlines() == ["(2, 2) {} {'countdown': 0.1} 4", "6"]


def test_guide_partial_and_combined_chains(project: Path) -> None:
    out = produce(
        project,
        "c1 = add.s(4) | multiply.s(8)\n"
        "print(c1(16).get(timeout=20))\n"
        "c2 = add.s(4, 16) | multiply.s(2) | (add.s(4) | multiply.s(8))\n"
        "print(c2().get(timeout=20))\n"
        "res = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()\n"
        "print(res.get(timeout=20), res.parent.get(timeout=5), res.parent.parent.get(timeout=5))",
    )
    assert out.splitlines() == ["160", "352", "16 8 4"]


def test_guide_chain_into_immutable_group(project: Path) -> None:
    out = produce(
        project,
        "res = (add.s(4, 4) | group(add.si(i, i) for i in range(10)))()\n"
        "print(type(res).__name__, res.get(timeout=20), res.parent.get(timeout=5))",
    )
    assert out == f"GroupResult {[i + i for i in range(10)]} 8"


def test_guide_link_children_and_collect(project: Path) -> None:
    out = produce(
        project,
        "res = add.apply_async((2, 2), link=multiply.s(16))\n"
        "print(res.get(timeout=20))\n"
        "import time\n"
        "child = res.children[0]\n"
        "print(child.get(timeout=20))\n"
        "print([value for _, value in res.collect()])\n"
        "s = add.s(2, 2)\n"
        "s.link(multiply.s(4))\n"
        "s.link(remember.s('linked-twice'))\n"
        "r = s.delay()\n"
        "print(sorted(c.get(timeout=20) for c in (r.get(timeout=20) and r.children)))",
    )
    assert out.splitlines() == ["4", "64", "[4, 64]", "[4, 16]"]
    assert read_note(project, "linked-twice") == ["4"]


def test_guide_chords(project: Path) -> None:
    out = produce(
        project,
        "print(chord(add.s(i, i) for i in range(100))(tsum.s()).get(timeout=30))\n"
        "header = [add.s(i, i) for i in range(100)]\n"
        "print(chord(header)(tsum.s()).get(timeout=30))\n"
        "print(chord((add.s(i, i) for i in range(3)), remember.si('done', 'chord-si'))()"
        ".get(timeout=20))",
    )
    assert out.splitlines() == ["9900", "9900", "done"]
    assert read_note(project, "chord-si") == ["'done'"]


def test_guide_map_starmap_chunks_skew(project: Path) -> None:
    out = produce(
        project,
        "print(~tsum.map([list(range(10)), list(range(100))]))\n"
        "print(~add.starmap(zip(range(10), range(10))))\n"
        "print(add.starmap(zip(range(3), range(3))).apply_async(countdown=0.2).get(timeout=20))\n"
        "res = add.chunks(zip(range(100), range(100)), 10)()\n"
        "values = res.get(timeout=30)\n"
        "print(len(values), values[0], values[-1][-1])\n"
        "g = add.chunks(zip(range(4), range(4)), 2).group()\n"
        "print(g.skew(start=0.1, stop=0.3, step=0.1)().get(timeout=20))",
    )
    assert out.splitlines() == [
        "[45, 4950]",
        str([i + i for i in range(10)]),
        "[0, 2, 4]",
        "10 [0, 2, 4, 6, 8, 10, 12, 14, 16, 18] 198",
        "[[0, 2], [4, 6]]",
    ]
