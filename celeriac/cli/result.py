"""``celeriac result ID``: wait for a task's result and print it."""

from __future__ import annotations

import json
from pprint import pformat
from typing import Any

import click

__all__ = ["result"]


def pretty(value: Any) -> str:
    """How a result is printed: strings as they are, JSON-like values indented."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        try:
            return json.dumps(value, sort_keys=True, indent=4, default=repr)
        except TypeError:
            return pformat(value)
    return pformat(value)


@click.command()
@click.argument("task_id")
@click.option("-t", "--task", "task_name", help="Name of the task (to use its result settings).")
@click.option("--traceback", "show_traceback", is_flag=True, help="Print the traceback instead.")
@click.option("--timeout", type=float, help="Give up after this many seconds (default: wait).")
@click.pass_obj
def result(
    obj: Any, task_id: str, task_name: str | None, show_traceback: bool, timeout: float | None
) -> None:
    """Wait for the task TASK_ID to finish and print its result."""
    app = obj.app
    handle = app.tasks[task_name].AsyncResult(task_id) if task_name else app.AsyncResult(task_id)
    if show_traceback:
        value = handle.traceback
    else:
        value = handle.get(timeout=timeout, propagate=False)
        if handle.failed():
            click.echo(pretty(handle.traceback or repr(value)), err=True)
            raise SystemExit(1)
    click.echo(pretty(value))
