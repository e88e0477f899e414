"""``celeriac report`` and ``celeriac shell``, run as a user runs them."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import WorkerProcess, run_cli, write_module

TASKS = """
    from celeriac import Celery

    app = Celery("tasks")
    app.conf.result_expires = 600

    @app.task
    def add(x, y):
        return x + y
"""


def test_report_shows_versions_and_changed_settings_without_secrets(tmp_path: Path) -> None:
    write_module(tmp_path, "tasks", TASKS)
    done = run_cli(["-A", "tasks", "-b", "redis://:s3cret@127.0.0.1:6379/5", "report"], tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("software -> celeriac:")
    assert "platform -> system:" in out
    assert "settings -> transport:redis" in out
    assert "result_expires: 600" in out
    assert "s3cret" not in out


def test_shell_has_the_app_tasks_and_canvas(tmp_path: Path) -> None:
    write_module(tmp_path, "tasks", TASKS)
    script = (
        "print(add(2, 3))\n"
        "names = dir()\n"
        "print(sorted(n for n in ('app', 'celery', 'chain', 'group', 'chord') if n in names))\n"
        "print((add.s(1, 1) | add.s(5))().get(timeout=20))\n"
    )
    with WorkerProcess("tasks", tmp_path, "-P", "threads"):
        done = run_cli(["-A", "tasks", "shell", "--python"], tmp_path, input_text=script)
    assert done.returncode == 0, done.stderr
    lines = [line.replace(">>> ", "").strip() for line in done.stdout.splitlines()]
    assert "5" in lines
    assert "['app', 'celery', 'chain', 'chord', 'group']" in lines
    assert "7" in lines
