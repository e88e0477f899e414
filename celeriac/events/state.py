"""Cluster state built from events: :class:`State` (Celery's ``app.events.State``, its basics).

Feed it every event (``Receiver(handlers={"*": state.event})``) and it keeps the latest
known state of each task (by id) and each worker (by node name): a task's state follows
its events (``task-received`` -> RECEIVED, ``task-succeeded`` -> SUCCESS, ...), a worker is
alive while its heartbeats keep coming (it is presumed gone once two heartbeat intervals
pass without one, as in Celery) and not after ``worker-offline``. Memory is bounded: the
oldest tasks and workers are forgotten beyond ``max_tasks_in_memory`` /
``max_workers_in_memory``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from celeriac import states

__all__ = ["State", "Task", "Worker"]

#: A worker is presumed gone after this share of its heartbeat interval (Celery's 200 %).
HEARTBEAT_EXPIRE_WINDOW = 200
#: Most heartbeat times remembered per worker.
HEARTBEATS_KEPT = 4

#: Task event type -> the state it means.
TASK_STATES = {
    "task-sent": states.PENDING,
    "task-received": states.RECEIVED,
    "task-started": states.STARTED,
    "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE,
    "task-retried": states.RETRY,
    "task-revoked": states.REVOKED,
    "task-rejected": states.REJECTED,
}

#: Event fields that are the sender's, not the task's.
_SENDER_FIELDS = frozenset({"type", "hostname", "clock", "pid", "utcoffset", "local_received"})


@dataclass
class Worker:
    """What the events said about one worker."""

    hostname: str
    pid: int | None = None
    freq: float = 60.0
    heartbeats: list[float] = field(default_factory=list)
    clock: int = 0
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None

    def event(self, type_: str, event: dict[str, Any]) -> None:
        """Take in a ``worker-*`` event (``type_`` without the ``worker-`` part)."""
        for name in ("pid", "freq", "active", "processed", "loadavg", "sw_ident", "sw_ver"):
            if event.get(name) is not None:
                setattr(self, name, event[name])
        if event.get("sw_sys") is not None:
            self.sw_sys = event["sw_sys"]
        self.clock = max(self.clock, int(event.get("clock") or 0))
        if type_ == "offline":
            self.heartbeats.clear()
            return
        stamp = event.get("local_received") or event.get("timestamp") or time.time()
        self.heartbeats = [*self.heartbeats, float(stamp)][-HEARTBEATS_KEPT:]

    @property
    def heartbeat_expires(self) -> float:
        """When this worker is presumed gone without another heartbeat (UNIX time)."""
        if not self.heartbeats:
            return 0.0
        return self.heartbeats[-1] + float(self.freq) * HEARTBEAT_EXPIRE_WINDOW / 100

    @property
    def alive(self) -> bool:
        return bool(self.heartbeats) and time.time() < self.heartbeat_expires

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def id(self) -> tuple[str, int | None]:
        return self.hostname, self.pid


@dataclass
class Task:
    """What the events said about one task; fields are None until an event sets them."""

    uuid: str
    name: str | None = None
    state: str = states.PENDING
    args: str | None = None
    kwargs: str | None = None
    retries: int | None = None
    eta: str | None = None
    expires: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    result: Any = None
    exception: str | None = None
    traceback: str | None = None
    runtime: float | None = None
    exchange: str | None = None
    routing_key: str | None = None
    worker: Worker | None = None
    timestamp: float | None = None
    clock: int = 0
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    succeeded: float | None = None
    failed: float | None = None
    retried: float | None = None
    revoked: float | None = None
    rejected: float | None = None
    #: Fields of events that are not attributes here (custom events, ``terminated``...).
    extra: dict[str, Any] = field(default_factory=dict)

    def event(self, type_: str, event: dict[str, Any], worker: Worker | None) -> None:
        """Take in a ``task-*`` event: its state, its time, and its fields."""
        new_state = TASK_STATES.get(type_)
        stamp = float(event.get("timestamp") or time.time())
        if new_state is not None:
            setattr(self, type_.split("-", 1)[1], stamp)
            if not self._is_older(new_state):
                self.state = new_state
        if worker is not None:
            self.worker = worker
        self.timestamp = stamp
        self.clock = max(self.clock, int(event.get("clock") or 0))
        for name, value in event.items():
            if name in _SENDER_FIELDS or name in ("uuid", "timestamp"):
                continue
            if name in _TASK_FIELDS:
                setattr(self, name, value)
            else:
                self.extra[name] = value

    def _is_older(self, new_state: str) -> bool:
        """A late event (``task-received`` after ``task-succeeded``) must not undo a result;
        a retry starts the task over, so RETRY is never late and never outranks."""
        if states.RETRY in (new_state, self.state):
            return False
        return states.precedence(new_state) > states.precedence(self.state)

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def info(self) -> dict[str, Any]:
        """The known fields, as Celery's ``Task.info()`` (for printing)."""
        shown = ("args", "kwargs", "retries", "result", "eta", "runtime", "expires", "exception")
        fields = {name: getattr(self, name) for name in shown if getattr(self, name) is not None}
        return {**fields, **self.extra}

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _TASK_FIELDS | {"uuid", "state"}}
        data["worker"] = self.worker.hostname if self.worker is not None else None
        return data


_TASK_FIELDS = frozenset(
    name
    for name in Task.__dataclass_fields__
    if name not in ("uuid", "state", "worker", "clock", "extra")
    and name not in {key.split("-", 1)[1] for key in TASK_STATES}
)


class State:
    """The cluster as the events tell it (thread-safe).

    Args:
        callback: called with ``(state, event)`` after each event is taken in.
        max_workers_in_memory / max_tasks_in_memory: how many are remembered.
    """

    def __init__(
        self,
        callback: Callable[[State, dict[str, Any]], Any] | None = None,
        max_workers_in_memory: int = 5000,
        max_tasks_in_memory: int = 10000,
    ) -> None:
        self.callback = callback
        self.max_workers_in_memory = max_workers_in_memory
        self.max_tasks_in_memory = max_tasks_in_memory
        self.workers: OrderedDict[str, Worker] = OrderedDict()
        self.tasks: OrderedDict[str, Task] = OrderedDict()
        self.event_count = 0
        self.task_count = 0
        self._lock = threading.RLock()

    def event(self, event: dict[str, Any]) -> tuple[tuple[Any, bool], str] | None:
        """Take in one event; returns ``((task or worker, created), subject)`` as Celery does."""
        with self._lock:
            self.event_count += 1
            group, _, subject = str(event.get("type", "")).partition("-")
            if group == "worker":
                found: tuple[tuple[Any, bool], str] | None = (
                    self._worker_event(subject, event),
                    subject,
                )
            elif group == "task" and event.get("uuid"):
                found = (self._task_event(event), subject)
            else:
                found = None
        if self.callback is not None:
            self.callback(self, event)
        return found

    def _worker_event(self, subject: str, event: dict[str, Any]) -> tuple[Worker, bool]:
        worker, created = self.get_or_create_worker(str(event.get("hostname")))
        worker.event(subject, event)
        return worker, created

    def _task_event(self, event: dict[str, Any]) -> tuple[Task, bool]:
        task_id = str(event["uuid"])
        task = self.tasks.get(task_id)
        created = task is None
        if task is None:
            task = self.tasks[task_id] = Task(task_id)
            self.task_count += 1
            while len(self.tasks) > self.max_tasks_in_memory:
                self.tasks.popitem(last=False)
        hostname = event.get("hostname")
        worker = None
        if hostname and event.get("type") != "task-sent":
            worker = self.get_or_create_worker(str(hostname))[0]
        task.event(str(event["type"]), event, worker)
        return task, created

    def get_or_create_worker(self, hostname: str) -> tuple[Worker, bool]:
        with self._lock:
            worker = self.workers.get(hostname)
            if worker is not None:
                return worker, False
            worker = self.workers[hostname] = Worker(hostname)
            while len(self.workers) > self.max_workers_in_memory:
                self.workers.popitem(last=False)
            return worker, True

    def clear(self) -> None:
        with self._lock:
            self.workers.clear()
            self.tasks.clear()
            self.event_count = self.task_count = 0

    # --- queries -----------------------------------------------------------------------------

    def alive_workers(self) -> list[Worker]:
        with self._lock:
            return [worker for worker in self.workers.values() if worker.alive]

    def task_types(self) -> list[str]:
        """The names of the tasks seen, sorted."""
        with self._lock:
            return sorted({task.name for task in self.tasks.values() if task.name})

    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        """``(uuid, task)``, oldest first."""
        with self._lock:
            items = list(self.tasks.items())
        yield from items[:limit] if limit is not None else items

    def tasks_by_time(
        self, limit: int | None = None, reverse: bool = True
    ) -> list[tuple[str, Task]]:
        """``(uuid, task)`` by the time of their last event (newest first with ``reverse``)."""
        with self._lock:
            items = sorted(
                self.tasks.items(), key=lambda item: item[1].timestamp or 0.0, reverse=reverse
            )
        return items[:limit] if limit is not None else items

    def tasks_by_type(
        self, name: str, limit: int | None = None, reverse: bool = True
    ) -> list[tuple[str, Task]]:
        """``(uuid, task)`` of the tasks named ``name``."""
        chosen = [item for item in self.tasks_by_time(reverse=reverse) if item[1].name == name]
        return chosen[:limit] if limit is not None else chosen

    def tasks_by_worker(
        self, hostname: str, limit: int | None = None, reverse: bool = True
    ) -> list[tuple[str, Task]]:
        """``(uuid, task)`` of the tasks last seen on worker ``hostname``."""
        chosen = [
            item
            for item in self.tasks_by_time(reverse=reverse)
            if item[1].worker is not None and item[1].worker.hostname == hostname
        ]
        return chosen[:limit] if limit is not None else chosen

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"
