"""``celeriac worker``: start a worker node."""

from __future__ import annotations

from typing import Any

import click

from celeriac.utils.log import configure_worker_logging
from celeriac.worker.autoscale import parse_autoscale
from celeriac.worker.daemon import DaemonOptions, daemon_context, expand_filename, parse_umask
from celeriac.worker.worker import Worker, WorkerOptions, default_nodename

__all__ = ["worker"]

LOG_LEVELS = click.Choice(
    ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"], case_sensitive=False
)


def _queue_list(value: tuple[str, ...]) -> list[str]:
    return [name.strip() for item in value for name in item.split(",") if name.strip()]


def _autoscale(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_autoscale(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command()
@click.option(
    "-l", "--loglevel", type=LOG_LEVELS, default="WARNING", show_default=True, help="Logging level."
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Number of threads (default: CPU count).",
)
@click.option(
    "--autoscale",
    metavar="MAX,MIN",
    callback=_autoscale,
    help="Grow the pool up to MAX under load, shrink it to MIN when idle (threads pool).",
)
@click.option(
    "-P",
    "--pool",
    type=click.Choice(["solo", "threads", "prefork", "processes", "gevent", "eventlet", "asyncio"]),
    help="Pool implementation.",
)
@click.option(
    "-Q",
    "--queues",
    multiple=True,
    help="Queues to consume, comma-separated (default: task_default_queue).",
)
@click.option("-n", "--hostname", help="Node name, e.g. worker1@%h (default: celery@%h).")
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=0),
    help="Messages reserved per pool slot (0: unlimited).",
)
@click.option(
    "--time-limit", type=click.FloatRange(min=0, min_open=True), help="Hard time limit (seconds)."
)
@click.option(
    "--soft-time-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Soft time limit (seconds): SoftTimeLimitExceeded is raised in the task.",
)
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=1),
    help="Replace a pool process after it ran this many tasks (prefork).",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=1),
    help="Replace a pool process after a task leaves it over this resident memory, KiB (prefork).",
)
@click.option(
    "-f", "--logfile", type=click.Path(dir_okay=False), help="Log to this file instead of stderr."
)
@click.option(
    "--pidfile", type=click.Path(dir_okay=False), help="Write the process id to this file."
)
@click.option(
    "-E",
    "--task-events",
    "--events",
    "task_events",
    is_flag=True,
    default=None,
    help="Send task events (task-received, task-succeeded, ...) for monitors.",
)
@click.option(
    "--without-heartbeat",
    is_flag=True,
    help="Send no worker events (worker-online, worker-heartbeat, worker-offline).",
)
@click.option(
    "--without-gossip",
    is_flag=True,
    help="Accepted for Celery's command lines (celeriac workers do not gossip).",
)
@click.option(
    "--without-mingle",
    is_flag=True,
    help="Accepted for Celery's command lines (celeriac workers do not mingle at start).",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between worker-heartbeat events (default 2).",
)
@click.option("-D", "--detach", is_flag=True, help="Run in the background as a daemon.")
@click.option("--uid", help="User to run as (name or id; needs root).")
@click.option("--gid", help="Group to run as (name or id; needs root).")
@click.option("--umask", help="Octal umask of the daemon (default 022 when detached).")
@click.option("--executable", help="Python interpreter for the detached process.")
@click.pass_obj
def worker(
    obj: object,
    loglevel: str,
    concurrency: int | None,
    autoscale: tuple[int, int] | None,
    pool: str | None,
    queues: tuple[str, ...],
    hostname: str | None,
    prefetch_multiplier: int | None,
    time_limit: float | None,
    soft_time_limit: float | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    task_events: bool | None,
    without_heartbeat: bool,
    without_gossip: bool,
    without_mingle: bool,
    heartbeat_interval: float | None,
    logfile: str | None,
    pidfile: str | None,
    detach: bool,
    uid: str | None,
    gid: str | None,
    umask: str | None,
    executable: str | None,
) -> None:
    """Start a worker: consume tasks from the broker and run them."""
    nodename = default_nodename(hostname)
    daemon = DaemonOptions(
        logfile=expand_filename(logfile, nodename) if logfile else None,
        pidfile=expand_filename(pidfile, nodename) if pidfile else None,
        umask=parse_umask(umask),
        uid=uid,
        gid=gid,
    )
    with daemon_context(daemon, detached=detach, executable=executable):
        app = obj.app  # type: ignore[attr-defined]
        conf = app.conf
        configure_worker_logging(conf, loglevel, daemon.logfile)
        options = WorkerOptions(
            concurrency=concurrency,
            pool=pool,
            queues=_queue_list(queues),
            hostname=hostname,
            prefetch_multiplier=prefetch_multiplier,
            loglevel=loglevel,
            redirect_stdouts=bool(conf.worker_redirect_stdouts),
            autoscale=autoscale,
            app_path=obj.app_name,  # type: ignore[attr-defined]
            logfile=daemon.logfile,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
            task_events=task_events or None,
            without_heartbeat=without_heartbeat,
            without_gossip=without_gossip,
            without_mingle=without_mingle,
            heartbeat_interval=heartbeat_interval,
        )
        worker = Worker(app, options)
        worker.start()
        if worker.exitcode:
            raise SystemExit(worker.exitcode)
