"""The pool seam: where jobs run. One small interface; implementations beside it.

A job is a plain callable prepared by the consumer (it runs the task and hands its outcome
on); the pool only decides on which thread (or process, later) it runs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

__all__ = ["Job", "Pool"]

Job = Callable[[], None]


class Pool(abc.ABC):
    """Runs jobs with up to ``concurrency`` at once."""

    #: The name given to ``-P``.
    name: ClassVar[str] = ""

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"Pool concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency

    @abc.abstractmethod
    def start(self) -> None:
        """Start the pool's workers (threads, processes)."""

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Run ``job`` when a slot is free. Never raises for the job's own errors."""

    @abc.abstractmethod
    def stop(self, *, wait: bool) -> None:
        """Stop taking jobs; with ``wait``, return once every submitted job has finished."""
