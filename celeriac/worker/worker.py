"""The worker: boots, prints its banner, runs the consumer, and shuts down on signals.

Shutdown follows Celery: the first SIGTERM or SIGINT is a *warm* shutdown (stop claiming,
give back messages that have not started, let running tasks finish, write every result and
ack); a second one is *cold* (give back every message still held and exit at once).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac import __version__, signals
from celeriac.brokers.base import mask_url
from celeriac.utils.log import redirect_stdouts
from celeriac.worker.consumer import Consumer
from celeriac.worker.leases import Leases
from celeriac.worker.pools import pool_class
from celeriac.worker.settle import Settler

if TYPE_CHECKING:
    from celeriac.app import Celery

__all__ = ["Worker", "WorkerOptions", "default_nodename"]

logger = logging.getLogger("celeriac.worker")


def default_nodename(name: str | None = None) -> str:
    """Expand ``%h`` (host), ``%n`` (host name part), ``%d`` (domain); default ``celery@%h``."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = name or "celery@%h"
    if "@" not in name:
        name = f"{name}@%h"
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


@dataclass
class WorkerOptions:
    """What ``celeriac worker`` was asked for (None means: take the setting)."""

    concurrency: int | None = None
    pool: str | None = None
    queues: list[str] = field(default_factory=list)
    hostname: str | None = None
    prefetch_multiplier: int | None = None
    loglevel: str = "WARNING"
    #: Send print() output to the log, after the banner (the CLI worker does).
    redirect_stdouts: bool = False


class Worker:
    """One worker node: a consumer feeding a pool, a settler writing results and acks."""

    def __init__(self, app: Celery, options: WorkerOptions) -> None:
        self.app = app
        self.options = options
        conf = app.conf
        self.hostname = default_nodename(options.hostname)
        self.pool_name = self._pool_name(options.pool)
        concurrency = options.concurrency or conf.worker_concurrency or os.cpu_count() or 1
        self.pool = pool_class(self.pool_name)(int(concurrency))
        multiplier = options.prefetch_multiplier
        if multiplier is None:
            multiplier = int(conf.worker_prefetch_multiplier)
        self.prefetch_limit = self.pool.concurrency * multiplier
        self.queues = options.queues or [conf.task_default_queue]
        self._stop = threading.Event()
        #: Set once the worker consumes (after the ``ready.`` log line).
        self.ready = threading.Event()
        self._signals = 0
        self.consumer: Consumer | None = None

    def _pool_name(self, requested: str | None) -> str:
        if requested:
            return requested
        if "worker_pool" in self.app.conf.changes:
            return str(self.app.conf.worker_pool)
        # Celery's default is prefork, which this version does not have yet: threads it is.
        return "threads"

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Boot, consume until a shutdown signal, then shut down (the main thread blocks here)."""
        self.app._worker_hostname = self.hostname  # type: ignore[attr-defined]
        signals.celeryd_init.send(
            sender=self.hostname,
            instance=self,
            conf=self.app.conf,
            options=dict(vars(self.options)),
        )
        self.app.loader_import_modules()
        broker = self.app.broker
        broker.connect()  # fails fast, with a clear error, if the broker is unusable
        backend = self.app.backend if self.app.result_backend_url else None
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=self.app.conf)
        print(self.banner(), file=sys.stdout, flush=True)
        if self.options.redirect_stdouts:
            redirect_stdouts(self.app.conf.worker_redirect_stdouts_level)
        self._warn_about_time_limits()
        self._install_signal_handlers()
        signals.worker_init.send(sender=self)
        leases = Leases(broker)
        settler = Settler(broker, backend)
        self.consumer = Consumer(
            self.app,
            broker,
            self.pool,
            settler,
            leases,
            queues=self.queues,
            hostname=self.hostname,
            prefetch_limit=self.prefetch_limit,
        )
        self.pool.start()
        settler.start()
        leases.start()
        consumer_thread = threading.Thread(target=self.consumer.run, name="Consumer", daemon=True)
        consumer_thread.start()
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self.consumer)
        self.ready.set()
        self._wait_for_stop()
        self._warm_shutdown(consumer_thread, settler, leases)
        signals.worker_shutdown.send(sender=self)

    def _warn_about_time_limits(self) -> None:
        """Say so when time limits are configured: these pools cannot enforce them."""
        conf = self.app.conf
        limited = sorted(
            name
            for name, task in self.app.tasks.regular().items()
            if task.time_limit is not None or task.soft_time_limit is not None
        )
        if conf.task_time_limit is not None or conf.task_soft_time_limit is not None:
            limited = ["all tasks (task_time_limit / task_soft_time_limit)"]
        if limited:
            logger.warning(
                "Time limits are set for %s, but the %s pool cannot enforce them (as in "
                "Celery, only process pools can): tasks will run to completion.",
                ", ".join(limited),
                self.pool_name,
            )

    def _wait_for_stop(self) -> None:
        while not self._stop.wait(0.5):
            pass

    def stop(self) -> None:
        """Ask for a warm shutdown (what the first SIGTERM does)."""
        self._stop.set()

    def _warm_shutdown(
        self, consumer_thread: threading.Thread, settler: Settler, leases: Leases
    ) -> None:
        assert self.consumer is not None
        self.consumer.stop()
        consumer_thread.join()
        self.pool.stop(wait=True)
        settler.stop()
        leases.stop()
        leftover = leases.held()
        if leftover:
            self.app.broker.reject(leftover, requeue=True)
        self.app.close()
        logger.info("%s stopped.", self.hostname)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in a test or another program: the caller stops us with stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.warning("worker: Warm shutdown (%s)", _process_name())
            signals.worker_shutting_down.send(
                sender=self.hostname, sig=name, how="Warm", exitcode=0
            )
            self._stop.set()
            return
        logger.warning("worker: Cold shutdown (%s)", _process_name())
        signals.worker_shutting_down.send(sender=self.hostname, sig=name, how="Cold", exitcode=1)
        self._cold_exit()

    def _cold_exit(self) -> None:
        """Give back every message still held, then leave without waiting for tasks."""
        if self.consumer is not None:
            self.consumer.stop()
            held = self.consumer.leases.held()
            try:
                if held:
                    self.app.broker.reject(held, requeue=True)
            except Exception as exc:  # their leases will lapse; nothing is lost
                logger.error("Could not give back %d messages: %r", len(held), exc)
        logging.shutdown()
        os._exit(1)

    # --- banner ------------------------------------------------------------------------------

    def banner(self) -> str:
        """The start-up banner: node, broker, backend, pool, queues and registered tasks."""
        app = self.app
        backend = app.result_backend_url
        tasks = sorted(app.tasks.regular())
        lines = [
            f" -------------- {self.hostname} v{__version__}",
            f"--- ***** ----- {platform.platform()} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            "-- ******* ---- ",
            "- *** --- * --- ",
            "- ** ---------- [config]",
            f"- ** ---------- .> app:         {app.main or '__main__'}:{id(app):#x}",
            f"- ** ---------- .> transport:   {mask_url(app.broker_url)}",
            f"- ** ---------- .> results:     {mask_url(backend) if backend else 'disabled://'}",
            f"- *** --- * --- .> concurrency: {self.pool.concurrency} ({self.pool_name})",
            f"-- ******* ---- .> prefetch:    {self.prefetch_limit or 'unlimited'}",
            "--- ***** ----- ",
            " -------------- [queues]",
        ]
        lines += [
            f"                .> {queue:<16} exchange={queue}(direct) key={queue}"
            for queue in self.queues
        ]
        lines += ["", "[tasks]"]
        lines += [f"  . {name}" for name in tasks] or ["  (none registered)"]
        return "\n".join(lines) + "\n"


def _process_name() -> str:
    import multiprocessing

    return multiprocessing.current_process().name
