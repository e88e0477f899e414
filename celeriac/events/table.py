"""``celeriac events`` without ``--dump``: a plain-text view of the cluster, redrawn live.

Celery draws a curses screen here; celeriac prints a concise table instead (works in any
terminal, in logs and through pipes): the workers with their status, active and processed
counts and load, then the latest tasks with their state, worker and result.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celeriac.events.state import State, Task

__all__ = ["render"]


def render(state: State, *, tasks: int = 15) -> str:
    """The table of ``state``: workers, then the ``tasks`` most recently heard of."""
    lines = [f"celeriac events: {state.event_count} events, {state.task_count} tasks"]
    lines.append("")
    lines.append(f"{'WORKER':<32} {'STATUS':<8} {'ACTIVE':>6} {'PROCESSED':>9}  LOAD")
    for worker in list(state.workers.values()):
        load = " ".join(f"{value:.2f}" for value in worker.loadavg or [])
        lines.append(
            f"{worker.hostname:<32} {worker.status_string:<8} "
            f"{_count(worker.active):>6} {_count(worker.processed):>9}  {load}"
        )
    lines.append("")
    lines.append(f"{'TIME':<8} {'TASK ID':<36} {'NAME':<28} {'STATE':<9} {'WORKER':<24} INFO")
    for _, task in state.tasks_by_time(limit=tasks):
        lines.append(_task_line(task))
    return "\n".join(lines)


def _task_line(task: Task) -> str:
    when = dt.datetime.fromtimestamp(task.timestamp or 0).strftime("%H:%M:%S")
    worker = task.worker.hostname if task.worker is not None else ""
    info = task.result if task.result is not None else task.exception or ""
    return f"{when:<8} {task.uuid:<36} {task.name or '':<28} {task.state:<9} {worker:<24} {info}"


def _count(value: Any) -> str:
    return "" if value is None else str(value)
