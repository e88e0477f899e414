"""What a worker holds right now, for remote control: reserved, active and revoked tasks.

The consumer reports each message's life here (received -> started -> done); ``inspect``
reads it. Revoked ids are kept as Celery keeps them (``worker_state.revoked``): at most
:data:`REVOKES_MAX` ids, each for :data:`REVOKE_EXPIRES` seconds, so a revoke sent before
its task arrives still stops it, and memory stays bounded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REVOKES_MAX", "REVOKE_EXPIRES", "RevokedSet", "TaskInfo", "WorkerState"]

#: Most revoked ids remembered (Celery's ``CELERY_WORKER_REVOKES_MAX``).
REVOKES_MAX = 50000
#: Seconds a revoked id is remembered (Celery's ``CELERY_WORKER_REVOKE_EXPIRES``).
REVOKE_EXPIRES = 10800.0


class RevokedSet:
    """Task ids with the time they were revoked; the oldest go first when full or expired."""

    def __init__(self, maxlen: int = REVOKES_MAX, expires: float = REVOKE_EXPIRES) -> None:
        self.maxlen = maxlen
        self.expires = expires
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, task_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._ids.pop(task_id, None)
            self._ids[task_id] = now
            self._prune(now)

    def _prune(self, now: float) -> None:
        ids = self._ids
        while ids and (len(ids) > self.maxlen or next(iter(ids.values())) < now - self.expires):
            ids.popitem(last=False)

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            added = self._ids.get(task_id)  # type: ignore[call-overload]
        return added is not None and added >= time.monotonic() - self.expires

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        with self._lock:
            self._prune(time.monotonic())
            return list(self._ids)


@dataclass
class TaskInfo:
    """One task the worker holds, in the shape of Celery's ``Request.info()``."""

    id: str
    name: str
    args: Any
    kwargs: Any
    hostname: str
    delivery_info: dict[str, Any]
    time_start: float | None = None
    acknowledged: bool = False
    worker_pid: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "args": self.args,
            "kwargs": self.kwargs,
            "type": self.name,
            "hostname": self.hostname,
            "time_start": self.time_start,
            "acknowledged": self.acknowledged,
            "delivery_info": self.delivery_info,
            "worker_pid": self.worker_pid,
        }


@dataclass
class WorkerState:
    """Reserved and active tasks, revoked ids and per-task totals of one worker."""

    reserved: dict[str, TaskInfo] = field(default_factory=dict)
    active: dict[str, TaskInfo] = field(default_factory=dict)
    revoked: RevokedSet = field(default_factory=RevokedSet)
    #: Tasks started, by name (``inspect stats``' ``total``).
    total: Counter[str] = field(default_factory=Counter)
    #: Ids a ``revoke(terminate=True)`` killed, with the signal used.
    terminated: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, info: TaskInfo) -> None:
        with self._lock:
            self.reserved[info.id] = info

    def started(self, task_id: str, args: Any, kwargs: Any, *, acknowledged: bool) -> None:
        with self._lock:
            info = self.reserved.pop(task_id, None)
            if info is None:
                return
            info.args, info.kwargs = args, kwargs
            info.time_start = time.time()
            info.acknowledged = acknowledged
            self.active[task_id] = info
            self.total[info.name] += 1

    def done(self, task_id: str) -> None:
        """The task ended, or will not run here; forget it."""
        with self._lock:
            self.reserved.pop(task_id, None)
            self.active.pop(task_id, None)

    def pop_terminated(self, task_id: str) -> int | None:
        """The signal a terminate sent to ``task_id``, if one did (asked once)."""
        with self._lock:
            return self.terminated.pop(task_id, None)

    def revoke(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self.revoked.add(task_id)

    def snapshot(self) -> tuple[list[TaskInfo], list[TaskInfo]]:
        """(reserved, active), copied under the lock."""
        with self._lock:
            return list(self.reserved.values()), list(self.active.values())
