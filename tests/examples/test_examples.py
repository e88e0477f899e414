"""Run every example in ``examples/`` the way a user would.

Each example is copied into a temporary directory; its workers are real ``celeriac worker``
processes started through the CLI there, and its producer ``run.py`` is a separate
``python run.py`` process. No broker URL anywhere: the embedded SQLite default is used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import WorkerProcess, run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Example:
    """One example: its directory, the ``-A`` app, one tuple of args per worker, and the
    lines ``run.py`` must print."""

    name: str
    app: str
    expected: tuple[str, ...]
    workers: tuple[tuple[str, ...], ...] = ((),)
    # Text each worker's output must contain (the banner's task list, for instance).
    worker_output: tuple[str, ...] = ()
    label: str = ""

    @property
    def id(self) -> str:
        return self.label or self.name


ROUTING_EXPECTED = (
    "add.delay(4, 6) -> 10 via high_priority",
    "mul.delay(2, 3) -> 6 via celery",
    "mul.apply_async([2, 5], queue=...) -> 10 via high_priority",
)

CASES = [
    Example(
        "canvas",
        "tasks",
        (
            "chain(add.s(4, 6) | multiply.s(3)) = 30",
            "chain(task1, task2, task3) = task3(task2(task1(arg1)))",
            f"group(add.s(i, i) for i in range(10)) = {[i + i for i in range(10)]}",
            "group(task1, task1, task1) = ['task1(1)', 'task1(2)', 'task1(3)']",
            "chord(group(...))(callback_task.s()) = callback got ['task1(a)', 'task1(b)']",
        ),
        worker_output=("  . tasks.callback_task",),
    ),
    Example(
        "tasks_basic",
        "tasks",
        ("add(4, 6) = 10", "add(3, 4), add(10, 4) = [7, 14]", "add(4, 5) = 9"),
        worker_output=("  . tasks.add",),
    ),
    Example(
        "config_module",
        "celeriac_app",
        (
            "task_serializer: json",
            "accept_content: ['json']",
            "timezone: Europe/Oslo",
            "result_expires: 3600",
            "add(4, 6) = 10",
        ),
        worker_output=("  . tasks.add",),  # registered through `imports`
    ),
    Example(
        "include_modules",
        "celery_main",
        ("add(4, 6) = 10", "sub(10, 4) = 6"),
        worker_output=("  . task1.add", "  . task2.sub"),
    ),
    Example(
        "async_result",
        "tasks",
        (
            "Result: 9",
            "status: SUCCESS",
            "successful: True",
            "get: 9",
            "get raised: ZeroDivisionError",
            "failed: True FAILURE",
            "traceback ends with: ZeroDivisionError: division by zero",
        ),
    ),
    Example(
        "routing",
        "tasks",
        ROUTING_EXPECTED,
        workers=(("-Q", "high_priority,celery"),),
        label="routing-one-worker",
    ),
    Example(
        "queues",
        "tasks",
        (
            "3 via default",
            "3 via high_priority",
            "'mail sent to a@example.com' via email",
            "'sms sent to 10086' via sms",
            "'cleaned' via low_priority",
        ),
        workers=(("-Q", "default,email,sms,high_priority,low_priority"),),
    ),
    Example(
        "calling",
        "tasks",
        (
            "delay()                        -> ok 0",
            "apply_async(args=(1,))         -> ok 1",
            "apply_async(kwargs={'x': 2})   -> ok 2",
            "countdown=1                    -> ok 3",
            "eta                            -> ok 4",
            "priority=0                     -> ok 5",
            "task_id=...                    -> ok 6",
            "countdown/eta respected: True",
        ),
        workers=(("-c", "4", "--prefetch-multiplier", "1"),),
    ),
    Example(
        "progress",
        "tasks",
        ("PROGRESS 0%", "state: SUCCESS", "long_add(4, 6) = 10"),
    ),
    Example(
        "shared_task",
        "task.app",
        (
            "add(2, 3) = 5",
            "my_task() = done",
            "email:send -> mail sent to a@example.com",
            "registered: ['add', 'email:send', 'task.tasks.my_task']",
        ),
        worker_output=("  . add", "  . email:send", "  . task.tasks.my_task"),
    ),
    Example(
        "retry",
        "tasks",
        (
            "unreliable_task -> {'answer': 'service answered', 'attempt': 2, 'retries': 1}",
            "always_fails raised: ConnectionError('service down for good')",
            "always_fails state: FAILURE",
        ),
        worker_output=("retry: Retry in 1s",),
    ),
    Example(
        "base_task",
        "tasks",
        (
            "task_process_notification -> notified on attempt 2",
            "handler: tasks.task_process_notification retried: ConnectionError",
            "handler: tasks.task_process_notification succeeded: 'notified on attempt 2'",
            "handler: tasks.parse failed: ValueError",
        ),
    ),
    Example(
        "package_layout",
        "celery_worker.celery",
        (
            "get_jenkins_info -> {'jobs': 3}",
            "get_gitlab_info -> {'project': 'demo', 'commits': 42}",
        ),
        workers=(("--pool=solo",),),
        worker_output=("  . get_jenkins_info", "  . get_gitlab_info", "(solo)"),
    ),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    return env


def copy_example(name: str, tmp_path: Path) -> Path:
    """A fresh copy of ``examples/NAME`` (without caches or a leftover database)."""
    dest = tmp_path / name
    shutil.copytree(
        EXAMPLES / name,
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "celeriac.db*", "*.txt"),
    )
    return dest


def run_producer(cwd: Path, script: str = "run.py") -> subprocess.CompletedProcess[str]:
    """``python run.py`` (or ``script``) in ``cwd``."""
    return subprocess.run(
        [sys.executable, script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


def check_producer(
    proc: subprocess.CompletedProcess[str], expected: tuple[str, ...], logs: str = ""
) -> None:
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}{logs}"
    assert proc.returncode == 0, report
    lines = proc.stdout.splitlines()
    for line in expected:
        assert any(printed.startswith(line) for printed in lines), f"{line!r} missing\n{report}"
    assert lines[-1:] == ["OK"], report


def run_with_workers(example: Example, tmp_path: Path) -> list[WorkerProcess]:
    """Copy the example, start its workers, run ``run.py``, stop the workers, check it all."""
    workdir = copy_example(example.name, tmp_path)
    with ExitStack() as stack:
        workers = [
            stack.enter_context(WorkerProcess(example.app, workdir, *args))
            for args in example.workers
        ]
        proc = run_producer(workdir)
        for worker in workers:
            assert worker.stop() == 0, worker.output
    logs = "".join(f"\n--- worker {' '.join(w.cmd[3:])}:\n{w.output}" for w in workers)
    check_producer(proc, example.expected, logs)
    return workers


def test_examples_are_all_covered() -> None:
    """Every example directory is run by a test (or is the eager one, run without a worker)."""
    directories = {path.name for path in EXAMPLES.iterdir() if path.is_dir()}
    assert directories == {case.name for case in CASES} | {"eager"}
    for directory in directories:
        assert (EXAMPLES / directory / "run.py").is_file()
        assert (EXAMPLES / directory / "README.md").is_file()
        assert f"({directory}/)" in (EXAMPLES / "README.md").read_text()


@pytest.mark.parametrize("example", [pytest.param(case, id=case.id) for case in CASES])
def test_example(example: Example, tmp_path: Path) -> None:
    workers = run_with_workers(example, tmp_path)
    for text in example.worker_output:
        assert all(text in worker.output for worker in workers), workers[0].output


def test_routing_one_worker_per_queue(tmp_path: Path) -> None:
    """The README's first layout: ``add`` only reaches the worker on ``high_priority``."""
    example = Example(
        "routing",
        "tasks",
        ROUTING_EXPECTED,
        workers=(("-Q", "high_priority", "-n", "high@%h"), ("-Q", "celery", "-n", "default@%h")),
    )
    high, default = run_with_workers(example, tmp_path)
    assert "high@" in high.output and "default@" in default.output

    def succeeded(worker: WorkerProcess, task: str) -> int:
        return len(re.findall(rf"Task {task}\[[^\]]+\] succeeded", worker.output))

    assert (succeeded(high, "tasks.add"), succeeded(default, "tasks.add")) == (1, 0)
    # One mul on each: the default route, and the one sent with queue="high_priority".
    assert (succeeded(high, "tasks.mul"), succeeded(default, "tasks.mul")) == (1, 1)


def test_eager_runs_without_a_worker(tmp_path: Path) -> None:
    workdir = copy_example("eager", tmp_path)
    proc = run_producer(workdir)
    check_producer(
        proc,
        (
            "type: EagerResult",
            "state: SUCCESS",
            "add(4, 6) = 10",
            "div(1, 0) failed: True ZeroDivisionError('division by zero')",
        ),
    )
    assert not list(workdir.glob("celeriac.db*")), "eager mode needs no broker file"


def test_basic_example_from_the_command_line(tmp_path: Path) -> None:
    """``celeriac -A tasks call tasks.add --args '[4, 6]'`` then ``celeriac -A tasks result ID``."""
    workdir = copy_example("tasks_basic", tmp_path)
    with WorkerProcess("tasks", workdir):
        sent = run_cli(["-A", "tasks", "call", "tasks.add", "--args", "[4, 6]"], workdir)
        assert sent.returncode == 0, sent.stderr
        task_id = sent.stdout.strip()
        assert UUID.match(task_id), sent.stdout
        got = run_cli(["-A", "tasks", "result", task_id], workdir)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "10"


def test_demo_runs_as_the_readme_says(tmp_path: Path) -> None:
    """``scripts/demo.sh``'s worker and producer (the README's first command), minus the setup."""
    demo = Path(__file__).resolve().parents[2] / "demo"
    for name in ("tasks.py", "produce.py"):
        shutil.copy(demo / name, tmp_path / name)
    with WorkerProcess("tasks", tmp_path, "-c", "2", "-P", "threads"):
        proc = run_producer(tmp_path, script="produce.py")
    assert proc.returncode == 0, proc.stderr
    assert "20 tasks sent and their results read in" in proc.stdout
    assert "chain(add.s(4, 6) | multiply.s(3)) = 30" in proc.stdout
    assert "chord(add.s(i, i) for i in range(100))(tsum.s()) = 9900" in proc.stdout
