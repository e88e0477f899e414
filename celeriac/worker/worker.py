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
from celeriac.exceptions import ImproperlyConfigured
from celeriac.utils.log import redirect_stdouts
from celeriac.worker.autoscale import Autoscaler, Scalable, keepalive_from_env
from celeriac.worker.consumer import Consumer
from celeriac.worker.leases import Leases
from celeriac.worker.pools import Pool, pool_class
from celeriac.worker.settle import Settler

if TYPE_CHECKING:
    from celeriac.app import Celery
    from celeriac.control.mailbox import Node
    from celeriac.events.worker_events import WorkerEvents

__all__ = ["HEARTBEAT_INTERVAL", "Worker", "WorkerOptions", "default_nodename"]

logger = logging.getLogger("celeriac.worker")

#: Seconds between ``worker-heartbeat`` events (Celery's default).
HEARTBEAT_INTERVAL = 2.0


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
    #: ``--autoscale``: (max, min) pool size; the pool starts at min.
    autoscale: tuple[int, int] | None = None
    #: The ``-A`` value: prefork children load the app by it (None: the app's main module).
    app_path: str | None = None
    #: ``--logfile``, for prefork children to log where the worker does.
    logfile: str | None = None
    #: ``--time-limit`` / ``--soft-time-limit``: override task_time_limit / task_soft_time_limit.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    #: ``--max-tasks-per-child`` / ``--max-memory-per-child`` (KiB), prefork only.
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    #: ``-E``: send task events (None: the ``worker_send_task_events`` setting).
    task_events: bool | None = None
    #: ``--without-heartbeat``: send no worker events (online, heartbeat, offline).
    without_heartbeat: bool = False
    #: ``--without-gossip`` / ``--without-mingle``: accepted for Celery's command lines;
    #: celeriac workers neither gossip nor mingle, so these change nothing.
    without_gossip: bool = False
    without_mingle: bool = False
    #: ``--heartbeat-interval``: seconds between ``worker-heartbeat`` events.
    heartbeat_interval: float | None = None


class Worker:
    """One worker node: a consumer feeding a pool, a settler writing results and acks."""

    def __init__(self, app: Celery, options: WorkerOptions) -> None:
        self.app = app
        self.options = options
        conf = app.conf
        self.hostname = default_nodename(options.hostname)
        self.pool_name = self._pool_name(options.pool)
        concurrency = options.concurrency or conf.worker_concurrency or os.cpu_count() or 1
        if options.autoscale is not None:
            concurrency = options.autoscale[1]
        self._apply_time_limits(options)
        self.pool = self._create_pool(int(concurrency))
        self.pool.on_failure = self._on_pool_failure
        self.autoscaler = self._autoscaler(options.autoscale)
        multiplier = options.prefetch_multiplier
        if multiplier is None:
            multiplier = int(conf.worker_prefetch_multiplier)
        # Autoscaled, the window is sized for MAX (as in Celery), or the pool could never grow.
        window = options.autoscale[0] if options.autoscale else self.pool.concurrency
        self.prefetch_limit = window * multiplier
        self.queues = options.queues or [conf.task_default_queue]
        self._stop = threading.Event()
        #: Set once the worker consumes (after the ``ready.`` log line).
        self.ready = threading.Event()
        self._signals = 0
        #: The process's exit status once ``start`` returns (1 after a pool failure).
        self.exitcode = 0
        self.consumer: Consumer | None = None
        #: The remote-control mailbox (None when worker_enable_remote_control is off).
        self.mailbox: Node | None = None
        #: The worker's events (task and worker events; see celeriac.events.worker_events).
        self.events: WorkerEvents | None = None

    def _autoscaler(self, bounds: tuple[int, int] | None) -> Autoscaler | None:
        if bounds is None:
            return None
        if not isinstance(self.pool, Scalable):
            raise ImproperlyConfigured(f"The {self.pool_name} pool cannot be autoscaled.")
        high, low = bounds
        keepalive = keepalive_from_env()
        return Autoscaler(self.pool, max_size=high, min_size=low, keepalive=keepalive)

    def _pool_name(self, requested: str | None) -> str:
        if requested:
            return requested
        if "worker_pool" in self.app.conf.changes:
            return str(self.app.conf.worker_pool)
        return "prefork"  # Celery's default

    def _apply_time_limits(self, options: WorkerOptions) -> None:
        # The worker flags win over the settings, as in Celery.
        if options.time_limit is not None:
            self.app.conf.task_time_limit = options.time_limit
        if options.soft_time_limit is not None:
            self.app.conf.task_soft_time_limit = options.soft_time_limit

    def _create_pool(self, concurrency: int) -> Pool:
        if self.pool_name not in ("prefork", "processes"):
            return pool_class(self.pool_name)(concurrency)
        from celeriac.worker.pools.prefork import PreforkPool

        conf, options = self.app.conf, self.options
        return PreforkPool(
            concurrency,
            app=self.app,
            app_path=options.app_path,
            loglevel=options.loglevel,
            logfile=options.logfile,
            redirect_stdouts=options.redirect_stdouts,
            max_tasks_per_child=options.max_tasks_per_child or conf.worker_max_tasks_per_child,
            max_memory_per_child=options.max_memory_per_child or conf.worker_max_memory_per_child,
        )

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
        self._start_events(self.consumer)
        if self.autoscaler is not None:
            self.autoscaler.start()
        settler.start()
        leases.start()
        consumer_thread = threading.Thread(target=self.consumer.run, name="Consumer", daemon=True)
        consumer_thread.start()
        self._start_mailbox(self.consumer)
        logger.info("%s ready.", self.hostname)
        signals.worker_ready.send(sender=self.consumer)
        self.ready.set()
        self._wait_for_stop()
        self._warm_shutdown(consumer_thread, settler, leases)
        signals.worker_shutdown.send(sender=self)

    def _start_mailbox(self, consumer: Consumer) -> None:
        """Answer remote control on ``<nodename>.<control_exchange>.pidbox``."""
        conf = self.app.conf
        if not conf.worker_enable_remote_control:
            return
        from celeriac.control.commands import Panel
        from celeriac.control.mailbox import MailboxNames, Node

        self.mailbox = Node(
            self.app.broker,
            self.hostname,
            Panel(self, consumer).dispatch,
            names=MailboxNames(str(conf.control_exchange)),
            serializer=str(conf.task_serializer),
            accept=consumer.policy.accept,
        )
        self.mailbox.start()

    def _start_events(self, consumer: Consumer) -> None:
        """Worker events (unless ``--without-heartbeat``), and task events with -E."""
        from celeriac.events.worker_events import WorkerEvents

        options = self.options
        task_events = options.task_events
        if task_events is None:
            task_events = bool(self.app.conf.worker_send_task_events)
        interval = options.heartbeat_interval or HEARTBEAT_INTERVAL
        state = consumer.state
        self.events = WorkerEvents(
            self.app,
            self.hostname,
            task_events=task_events,
            heartbeat=None if options.without_heartbeat else interval,
            stats=lambda: (len(state.snapshot()[1]), consumer.processed),
        )
        if task_events:
            consumer.task_events = self.events
        if self.events.needed:
            self.events.start()

    def _warn_about_time_limits(self) -> None:
        """Say so when time limits are configured: these pools cannot enforce them."""
        if self.pool_name in ("prefork", "processes"):
            return  # the prefork pool enforces them
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

    def _on_pool_failure(self) -> None:
        logger.critical("The pool stopped: shutting down, unfinished tasks go back.")
        self.exitcode = 1
        self.stop()

    def _warm_shutdown(
        self, consumer_thread: threading.Thread, settler: Settler, leases: Leases
    ) -> None:
        assert self.consumer is not None
        # The consumer first: jobs that have not started must be given back at once, not
        # after the mailbox's listener has finished its current wait.
        self.consumer.stop()
        if self.mailbox is not None:
            self.mailbox.stop()
        consumer_thread.join()
        if self.autoscaler is not None:
            self.autoscaler.stop()
        self.pool.stop(wait=True)
        settler.stop()
        leases.stop()
        leftover = leases.held()
        if leftover:
            self.app.broker.reject(leftover, requeue=True)
        if self.events is not None:
            self.events.stop()  # after the last task event: worker-offline comes last
        self.app.close()
        logger.info("%s stopped.", self.hostname)

    def _install_signal_handlers(self) -> None:
        # Asked of signal.signal(), not of `threading`: under eventlet's patching
        # main_thread() is not the current thread even in the main thread.
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: embedded in a test or another program,
                return  # whose caller stops us with stop()

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
        if self.pool_name in ("prefork", "processes"):
            self.pool.stop(wait=False)  # kill the children: their tasks are given back above
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
            f"- *** --- * --- .> concurrency: {self._concurrency_text()}",
            f"-- ******* ---- .> prefetch:    {self.prefetch_limit or 'unlimited'}",
            f"--- ***** ----- .> task events: {self._task_events_text()}",
            " -------------- [queues]",
        ]
        lines += [
            f"                .> {queue:<16} exchange={queue}(direct) key={queue}"
            for queue in self.queues
        ]
        lines += ["", "[tasks]"]
        lines += [f"  . {name}" for name in tasks] or ["  (none registered)"]
        return "\n".join(lines) + "\n"

    def _task_events_text(self) -> str:
        enabled = self.options.task_events
        if enabled is None:
            enabled = bool(self.app.conf.worker_send_task_events)
        return "ON" if enabled else "OFF (enable -E to monitor tasks in this worker)"

    def _concurrency_text(self) -> str:
        if self.autoscaler is not None:
            scaler = self.autoscaler
            return f"{scaler.min_size}..{scaler.max_size} ({self.pool_name}, autoscale)"
        return f"{self.pool.concurrency} ({self.pool_name})"


def _process_name() -> str:
    import multiprocessing

    return multiprocessing.current_process().name
