"""``celeriac worker``: start a worker node."""

from __future__ import annotations

import os

import click

from celeriac.utils.log import configure_worker_logging
from celeriac.worker.worker import Worker, WorkerOptions

__all__ = ["worker"]

LOG_LEVELS = click.Choice(
    ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"], case_sensitive=False
)


def _queue_list(value: tuple[str, ...]) -> list[str]:
    return [name.strip() for item in value for name in item.split(",") if name.strip()]


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
    "-f", "--logfile", type=click.Path(dir_okay=False), help="Log to this file instead of stderr."
)
@click.option(
    "--pidfile", type=click.Path(dir_okay=False), help="Write the process id to this file."
)
@click.pass_obj
def worker(
    obj: object,
    loglevel: str,
    concurrency: int | None,
    pool: str | None,
    queues: tuple[str, ...],
    hostname: str | None,
    prefetch_multiplier: int | None,
    logfile: str | None,
    pidfile: str | None,
) -> None:
    """Start a worker: consume tasks from the broker and run them."""
    app = obj.app  # type: ignore[attr-defined]
    conf = app.conf
    configure_worker_logging(conf, loglevel, logfile)
    options = WorkerOptions(
        concurrency=concurrency,
        pool=pool,
        queues=_queue_list(queues),
        hostname=hostname,
        prefetch_multiplier=prefetch_multiplier,
        loglevel=loglevel,
        redirect_stdouts=bool(conf.worker_redirect_stdouts),
    )
    node = Worker(app, options)
    if pidfile:
        with open(pidfile, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    try:
        node.start()
    finally:
        if pidfile and os.path.exists(pidfile):
            os.remove(pidfile)
