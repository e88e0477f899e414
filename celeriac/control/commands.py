"""The worker's side of remote control: one function per command, in one table.

Each command takes the :class:`Panel` (the running worker's parts) and the request's
``arguments`` and returns the reply, in the shapes Celery's workers send: control
commands answer ``{"ok": text}`` or ``{"error": text}``; inspect commands answer the data.
"""

from __future__ import annotations

import logging
import os
import resource
import signal as signals_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celeriac.brokers.base import mask_url
from celeriac.control.mailbox import NO_REPLY
from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.autoscale import Scalable
from celeriac.worker.rate_limits import parse_rate

if TYPE_CHECKING:
    from celeriac.worker.consumer import Consumer
    from celeriac.worker.worker import Worker

__all__ = ["COMMANDS", "Panel"]

logger = logging.getLogger("celeriac.worker.control")

Command = Callable[["Panel", dict[str, Any]], Any]

#: Command name -> function; names are Celery's (and its ``dump_*`` aliases).
COMMANDS: dict[str, Command] = {}


def command(*names: str) -> Callable[[Command], Command]:
    def register(fun: Command) -> Command:
        for name in names:
            COMMANDS[name] = fun
        return fun

    return register


@dataclass
class Panel:
    """What the commands act on: the worker and its consumer."""

    worker: Worker
    consumer: Consumer

    def dispatch(self, method: str, arguments: dict[str, Any]) -> Any:
        """Run ``method``; an unknown one answers an error, as Celery's workers do."""
        fun = COMMANDS.get(method)
        if fun is None:
            return {"error": f"unknown command {method!r}"}
        return fun(self, arguments)


def ok(text: str) -> dict[str, str]:
    return {"ok": text}


def error(text: str) -> dict[str, str]:
    return {"error": text}


# --- inspect ---------------------------------------------------------------------------------


@command("ping")
def ping(panel: Panel, args: dict[str, Any]) -> Any:
    return ok("pong")


def _pids(panel: Panel) -> dict[str, int]:
    running = getattr(panel.worker.pool, "running", None)
    return running() if callable(running) else {}


@command("active", "dump_active")
def active(panel: Panel, args: dict[str, Any]) -> Any:
    _, tasks = panel.consumer.state.snapshot()
    pids = _pids(panel)
    return [_with_pid(info.as_dict(), pids) for info in tasks]


def _with_pid(info: dict[str, Any], pids: dict[str, int]) -> dict[str, Any]:
    info["worker_pid"] = pids.get(info["id"], os.getpid())
    return info


@command("reserved", "dump_reserved")
def reserved(panel: Panel, args: dict[str, Any]) -> Any:
    waiting, _ = panel.consumer.state.snapshot()
    return [info.as_dict() for info in waiting]


@command("scheduled", "dump_schedule")
def scheduled(panel: Panel, args: dict[str, Any]) -> Any:
    """Always empty: ETA tasks wait in the broker, never in the worker's memory."""
    return []


@command("registered", "dump_tasks")
def registered(panel: Panel, args: dict[str, Any]) -> Any:
    items = args.get("taskinfoitems") or ()
    tasks = panel.worker.app.tasks.regular()
    return [_task_line(name, tasks[name], items) for name in sorted(tasks)]


def _task_line(name: str, task: Any, items: Any) -> str:
    fields = [(item, getattr(task, item, None)) for item in items or ("rate_limit",)]
    shown = " ".join(f"{item}={value}" for item, value in fields if value is not None)
    return f"{name} [{shown}]" if shown else name


@command("revoked", "dump_revoked")
def revoked(panel: Panel, args: dict[str, Any]) -> Any:
    return panel.consumer.state.revoked.ids()


@command("query_task")
def query_task(panel: Panel, args: dict[str, Any]) -> Any:
    wanted = set(_ids(args.get("ids")))
    waiting, running = panel.consumer.state.snapshot()
    pids = _pids(panel)
    found: dict[str, Any] = {}
    for label, infos in (("reserved", waiting), ("active", running)):
        for info in infos:
            if info.id in wanted:
                found[info.id] = [label, _with_pid(info.as_dict(), pids)]
    return found


@command("stats")
def stats(panel: Panel, args: dict[str, Any]) -> Any:
    worker, consumer = panel.worker, panel.consumer
    state = consumer.state
    return {
        "total": dict(state.total),
        "pid": os.getpid(),
        "clock": str(worker.mailbox.clock.value if worker.mailbox else 0),
        "uptime": int(time.monotonic() - state.started_at),
        "pool": _pool_stats(panel),
        "prefetch_count": consumer.prefetch_limit,
        "broker": _broker_stats(worker.app.broker_url),
        "rusage": _rusage(),
    }


def _pool_stats(panel: Panel) -> dict[str, Any]:
    pool = panel.worker.pool
    kind = type(pool)
    info: dict[str, Any] = {
        "implementation": f"{kind.__module__}:{kind.__name__}",
        "max-concurrency": pool.concurrency,
    }
    pids = getattr(pool, "child_pids", None)
    info["processes"] = list(pids) if pids is not None else [os.getpid()]
    options = panel.worker.options
    info["max-tasks-per-child"] = options.max_tasks_per_child or "N/A"
    return info


def _broker_stats(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "transport": parts.scheme,
        "hostname": parts.hostname,
        "port": parts.port,
        "virtual_host": parts.path.lstrip("/") or None,
        "userid": parts.username,
        "uri": mask_url(url),
    }


def _rusage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    names = [name for name in dir(usage) if name.startswith("ru_")]
    return {name[3:]: getattr(usage, name) for name in names}


@command("active_queues")
def active_queues(panel: Panel, args: dict[str, Any]) -> Any:
    return [_queue_info(name) for name in panel.consumer.queues]


def _queue_info(name: str) -> dict[str, Any]:
    """A queue as kombu's ``Queue.as_dict()`` shows it (celeriac queues: direct, durable)."""
    exchange = {
        "name": name,
        "type": "direct",
        "arguments": None,
        "durable": True,
        "passive": False,
        "auto_delete": False,
        "delivery_mode": None,
        "no_declare": False,
    }
    return {
        "name": name,
        "exchange": exchange,
        "routing_key": name,
        "queue_arguments": None,
        "binding_arguments": None,
        "consumer_arguments": None,
        "durable": True,
        "exclusive": False,
        "auto_delete": False,
        "no_ack": False,
        "alias": None,
        "bindings": [],
        "no_declare": None,
        "expires": None,
        "message_ttl": None,
        "max_length": None,
        "max_length_bytes": None,
        "max_priority": None,
    }


@command("conf", "dump_conf")
def conf(panel: Panel, args: dict[str, Any]) -> Any:
    changes = panel.worker.app.conf.changes
    return {name: _censored(name, value) for name, value in sorted(changes.items())}


def _censored(name: str, value: Any) -> Any:
    lowered = name.lower()
    if any(word in lowered for word in ("password", "secret", "token", "key")):
        return "********"
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return repr(value)


# --- control ---------------------------------------------------------------------------------


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _signum(value: Any) -> int:
    if isinstance(value, int):
        return value
    name = str(value or "SIGTERM").upper()
    return int(getattr(signals_module, name if name.startswith("SIG") else f"SIG{name}"))


@command("revoke")
def revoke(panel: Panel, args: dict[str, Any]) -> Any:
    ids = _ids(args.get("task_id"))
    state = panel.consumer.state
    state.revoke(ids)
    listing = ", ".join(repr(task_id) for task_id in ids)
    if not args.get("terminate"):
        logger.info("Tasks flagged as revoked: %s", ", ".join(ids))
        return ok(f"tasks {{{listing}}} flagged as revoked")
    signum = _signum(args.get("signal"))
    killed = [task_id for task_id in ids if _terminate(panel, task_id, signum)]
    if not killed:
        return ok(f"tasks {{{listing}}} flagged as revoked")
    return ok(f"terminate: {', '.join(killed)}")


def _terminate(panel: Panel, task_id: str, signum: int) -> bool:
    state = panel.consumer.state
    _, running = state.snapshot()
    info = next((info for info in running if info.id == task_id), None)
    if info is None:
        return False
    kill = getattr(panel.worker.pool, "terminate", None)
    if not callable(kill):
        logger.warning(
            "The %s pool cannot terminate a running task: %s[%s] runs to completion.",
            panel.worker.pool_name,
            info.name,
            task_id,
        )
        return False
    logger.info("Terminating %s (%s)", task_id, signals_module.Signals(signum).name)
    state.terminated[task_id] = signum
    if not kill(task_id, signum):
        state.terminated.pop(task_id, None)
        return False
    _announce_terminated(panel, info.name, task_id, signum)
    return True


def _announce_terminated(panel: Panel, name: str, task_id: str, signum: int) -> None:
    from celeriac import signals
    from celeriac.task import Context

    task = panel.worker.app.tasks.get(name)
    request = Context(id=task_id, task=name, hostname=panel.worker.hostname)
    signals.task_revoked.send(
        sender=task, request=request, terminated=True, signum=signum, expired=False
    )
    events = panel.consumer.task_events
    if events is not None:
        events.task_revoked(task_id, task, terminated=True, signum=signum)


@command("enable_events")
def enable_events(panel: Panel, args: dict[str, Any]) -> Any:
    """Start sending task events (as if the worker had been started with -E)."""
    events = panel.worker.events
    if events is None or not events.enable_task_events():
        return ok("task events already enabled")
    panel.consumer.task_events = events
    logger.info("Events of group {task} enabled by remote.")
    return ok("task events enabled")


@command("disable_events")
def disable_events(panel: Panel, args: dict[str, Any]) -> Any:
    """Stop sending task events (worker events go on)."""
    events = panel.worker.events
    if events is None or not events.disable_task_events():
        return ok("task events already disabled")
    panel.consumer.task_events = None
    logger.info("Events of group {task} disabled by remote.")
    return ok("task events disabled")


@command("heartbeat")
def heartbeat(panel: Panel, args: dict[str, Any]) -> Any:
    """Send a worker-heartbeat now (a monitor that just started asks for one)."""
    logger.debug("Heartbeat requested by remote.")
    events = panel.worker.events
    if events is not None:
        events.worker_event("worker-heartbeat")
    return None


@command("rate_limit")
def rate_limit(panel: Panel, args: dict[str, Any]) -> Any:
    name, rate = args.get("task_name"), args.get("rate_limit")
    task = panel.worker.app.tasks.get(str(name))
    if task is None:
        return error("unknown task")
    try:
        parse_rate(rate)
    except (ImproperlyConfigured, TypeError) as exc:
        return error(f"Invalid rate limit string: {exc!r}")
    task.rate_limit = rate
    if not rate:
        logger.info("Rate limits disabled for tasks of type %s", name)
        return ok("rate limit disabled successfully")
    logger.info("New rate limit for tasks of type %s: %s.", name, rate)
    return ok("new rate limit set successfully")


@command("time_limit")
def time_limit(panel: Panel, args: dict[str, Any]) -> Any:
    name = str(args.get("task_name"))
    task = panel.worker.app.tasks.get(name)
    if task is None:
        logger.error("Change time limit attempt for unknown task %s", name)
        return error("unknown task")
    task.soft_time_limit = args.get("soft")
    task.time_limit = args.get("hard")
    logger.info(
        "New time limits for tasks of type %s: soft=%s hard=%s",
        name,
        task.soft_time_limit,
        task.time_limit,
    )
    return ok("time limits set successfully")


@command("pool_grow")
def pool_grow(panel: Panel, args: dict[str, Any]) -> Any:
    pool = panel.worker.pool
    if not isinstance(pool, Scalable):
        return error(f"The {panel.worker.pool_name} pool cannot be resized")
    pool.grow(int(args.get("n", 1)))
    return ok("pool will grow")


@command("pool_shrink")
def pool_shrink(panel: Panel, args: dict[str, Any]) -> Any:
    pool = panel.worker.pool
    if not isinstance(pool, Scalable):
        return error(f"The {panel.worker.pool_name} pool cannot be resized")
    pool.shrink(int(args.get("n", 1)))
    return ok("pool will shrink")


@command("add_consumer")
def add_consumer(panel: Panel, args: dict[str, Any]) -> Any:
    queue = str(args.get("queue"))
    consumer = panel.consumer
    if queue in consumer.queues:
        return ok(f"already consuming from {queue!r}")
    consumer.queues = [*consumer.queues, queue]  # one assignment: the claim loop reads it
    logger.info("Started consuming from %s", queue)
    return ok(f"add consumer {queue}")


@command("cancel_consumer")
def cancel_consumer(panel: Panel, args: dict[str, Any]) -> Any:
    queue = str(args.get("queue"))
    consumer = panel.consumer
    remaining = [name for name in consumer.queues if name != queue]
    if not remaining:
        return error(f"cannot stop consuming from {queue}: it is the last queue")
    consumer.queues = remaining
    logger.info("No longer consuming from %s", queue)
    return ok(f"no longer consuming from {queue}")


@command("shutdown")
def shutdown(panel: Panel, args: dict[str, Any]) -> Any:
    """Warm shutdown; no reply is sent (as in Celery, whose worker exits instead)."""
    logger.warning("Got shutdown from remote")
    panel.worker.stop()
    return NO_REPLY
