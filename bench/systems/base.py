"""The interface every adapter implements, and what adapters share (Redis/RabbitMQ isolation).

An adapter knows how to write its system's task module (two tasks: ``noop`` and ``sleep``,
both ending with the shared ``done()`` completion signal), how to enqueue tasks one by one and
in bulk, the worker command lines, and how to clear what it left in its broker.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from systems.taskmodule import PRELUDE

#: Every Redis-based system uses this database, flushed before and after each run (only it).
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
#: RabbitMQ: a virtual host of our own when the orchestrator could create one, else "/".
AMQP_VHOST = os.environ.get("BENCH_AMQP_VHOST", "/")
QUEUE = "celeriac_bench"


@dataclass(frozen=True)
class Context:
    """Where one run happens and how the system should be configured for it."""

    workdir: Path
    results: bool  # store task results (W2r) or not (every other workload)


class System(abc.ABC):
    """One task-queue system on one broker, as the driver sees it."""

    name: ClassVar[str]
    library: ClassVar[str]  # the distribution whose version is reported
    broker: ClassVar[str]  # "sqlite", "redis" or "rabbitmq"
    broker_port: ClassVar[int | None] = None  # whose listening process is the broker server
    call_api: ClassVar[str] = ""  # how one task is sent, as a user writes it
    bulk_api: ClassVar[str | None] = None  # how the bulk enqueue is done, if the library has one
    io_pool: ClassVar[str] = ""  # the I/O pool used for W5, as said in the report

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tasks: ModuleType | None = None

    # --- the task module ----------------------------------------------------------------------

    @abc.abstractmethod
    def task_source(self) -> str:
        """Source of ``benchtasks.py`` after the prelude: defines ``noop`` and ``sleep``."""

    def install(self) -> None:
        """Write ``benchtasks.py`` into the work directory and import it in this process."""
        (self.ctx.workdir / "benchtasks.py").write_text(PRELUDE + self.task_source())
        sys.path.insert(0, str(self.ctx.workdir))
        sys.modules.pop("benchtasks", None)
        self.tasks = importlib.import_module("benchtasks")

    # --- client side ----------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, task: str, count: int, deadline: float) -> int:
        """Send ``count`` calls of ``task`` one by one (stop at ``deadline``); return how many."""

    def enqueue_bulk(self, count: int) -> int:
        """Send ``count`` calls of ``noop`` with the library's bulk API (see ``bulk_api``)."""
        raise NotImplementedError

    # --- worker side ----------------------------------------------------------------------------

    @abc.abstractmethod
    def worker_argv(self, io: bool) -> list[str]:
        """The worker command line: both cores for no-op tasks, or the I/O pool (``io``)."""

    def worker_env(self, io: bool) -> dict[str, str]:
        """Extra environment for the worker process."""
        return {}

    # --- broker housekeeping --------------------------------------------------------------------

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Empty the broker namespace this system uses (before and after each run)."""

    def server_ports(self) -> list[int]:
        """Ports of the servers this run uses: the broker's, and Redis when results go there."""
        ports = [self.broker_port] if self.broker_port else []
        if self.ctx.results and self.broker == "rabbitmq":
            ports.append(6379)
        return ports

    def results_stored(self) -> int | None:
        """How many task results the backend holds now (W2r check), if it can be counted."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release client connections (end of the session)."""


class AsyncSystem(System):
    """An asyncio library: one event loop and one client connection for the whole session."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.loop = asyncio.new_event_loop()
        self.client: Any = None

    @abc.abstractmethod
    async def connect(self) -> Any:
        """Open the library's client (kept in ``self.client``)."""

    @abc.abstractmethod
    async def send(self, task: str) -> None:
        """Enqueue one call of ``task`` through ``self.client``."""

    async def disconnect(self) -> None:
        """Close ``self.client``."""

    def enqueue(self, task: str, count: int, deadline: float) -> int:
        return self.loop.run_until_complete(self._enqueue(task, count, deadline))

    async def _enqueue(self, task: str, count: int, deadline: float) -> int:
        if self.client is None:
            self.client = await self.connect()
        for sent in range(count):
            if sent % 100 == 0 and time.perf_counter() > deadline:
                return sent
            await self.send(task)
        return count

    def close(self) -> None:
        if self.client is not None:
            self.loop.run_until_complete(self.disconnect())
        self.loop.close()


def send_loop(send: Callable[[], object], count: int, deadline: float) -> int:
    """Call ``send()`` ``count`` times, or until ``deadline``; return how many calls were made."""
    for sent in range(count):
        if sent % 100 == 0 and time.perf_counter() > deadline:
            return sent
        send()
    return count


def bin_path(script: str) -> str:
    """A console script of the running virtual environment (``celery``, ``dramatiq``, ...)."""
    return str(Path(sys.executable).parent / script)


def flush_redis() -> None:
    """FLUSHDB on the benchmark's own Redis database, never another."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


def count_redis_keys(pattern: str) -> int:
    """How many keys of the benchmark's Redis database match ``pattern``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def amqp_url() -> str:
    vhost = "" if AMQP_VHOST == "/" else AMQP_VHOST
    return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def delete_amqp_queues(names: list[str]) -> None:
    """Delete our queues (and the exchanges named like them) from RabbitMQ."""
    import amqp

    vhost = AMQP_VHOST
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", virtual_host=vhost)
    conn.connect()
    try:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)
            channel.exchange_delete(name)
    finally:
        conn.close()
