"""The pool seam: where task bodies run. One small interface; implementations beside it.

A :class:`Job` is one message ready to run. The pool calls ``begin()`` when it has a free
slot (in the worker process: decode, early ack, STARTED; ``None`` means "do not run", e.g.
during a warm shutdown), then runs the body somewhere (this thread, another thread, a
child process), then hands the outcome to ``finish()`` back in the worker process.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from celeriac.task import Context, Task
    from celeriac.worker.execution import Outcome

__all__ = ["Job", "Pool", "Prepared", "run_inline"]


@dataclass(slots=True)
class Prepared:
    """A job ready for its body to run: the task, its request and decoded arguments."""

    task: Task[Any, Any]
    request: Context
    args: list[Any]
    kwargs: dict[str, Any]
    #: Seconds: the message's limit, else the task's, else the worker's setting (None: none).
    time_limit: float | None = None
    soft_time_limit: float | None = None


class Job(Protocol):
    """One message to run, as the consumer hands it to the pool."""

    def begin(self) -> Prepared | None:
        """In the worker process, when a slot is free: prepare, or None to skip running."""

    def run(self, prepared: Prepared) -> Outcome:
        """Run the body here (in this thread) and return how it ended."""

    def finish(self, outcome: Outcome) -> None:
        """In the worker process: log, store the result, settle the message."""

    def fail(self, error: BaseException) -> None:
        """celeriac itself failed around this job (not the task body)."""


def run_inline(job: Job, *, soft_limit: bool = False) -> None:
    """Run a job entirely in the calling thread (the solo and threads pools).

    With ``soft_limit`` (real OS threads only, never greenlets: the exception is aimed at
    the thread), a soft time limit is enforced on a best-effort basis; see
    :class:`~celeriac.worker.time_limits.ThreadSoftLimit`.
    """
    try:
        prepared = job.begin()
        if prepared is not None:
            outcome = _run_soft_limited(job, prepared) if soft_limit else job.run(prepared)
            job.finish(outcome)
    except Exception as error:
        job.fail(error)


def _run_soft_limited(job: Job, prepared: Prepared) -> Outcome:
    soft = prepared.soft_time_limit
    if soft is None:
        return job.run(prepared)
    from celeriac.worker.time_limits import ThreadSoftLimit

    with ThreadSoftLimit(soft, prepared.task.name, prepared.request.id or ""):
        return job.run(prepared)


class Pool(abc.ABC):
    """Runs jobs with up to ``concurrency`` at once."""

    #: The name given to ``-P``.
    name: ClassVar[str] = ""

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"Pool concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        #: Called (from the pool's own thread) if the pool can no longer run jobs, so the
        #: worker shuts down and gives back what it holds instead of taking more.
        self.on_failure: Callable[[], None] | None = None

    @abc.abstractmethod
    def start(self) -> None:
        """Start the pool's workers (threads, processes)."""

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Run ``job`` when a slot is free. Never raises for the job's own errors."""

    @abc.abstractmethod
    def stop(self, *, wait: bool) -> None:
        """Stop taking jobs; with ``wait``, return once every submitted job has finished."""
