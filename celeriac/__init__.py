"""celeriac: a distributed task queue with Celery's API and wire, on an embedded SQLite default.

Switch from Celery by changing imports (``from celeriac import Celery``) and the command name
(``celeriac -A proj worker``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from celeriac import states
from celeriac._context import current_app, current_task
from celeriac.app import Celeriac, Celery, shared_task
from celeriac.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from celeriac.routing import Exchange, Queue
from celeriac.task import Task

__all__ = [
    "Celeriac",
    "Celery",
    "Exchange",
    "Queue",
    "Signature",
    "Task",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "xmap",
    "xstarmap",
]
