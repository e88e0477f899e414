"""The solo pool: jobs run one at a time, in the consumer's own thread."""

from __future__ import annotations

from celeriac.worker.pools.base import Job, Pool, run_inline

__all__ = ["SoloPool"]


class SoloPool(Pool):
    """Runs each job inline when submitted (concurrency is always 1)."""

    name = "solo"

    def __init__(self, concurrency: int = 1) -> None:
        super().__init__(1)

    def start(self) -> None:
        """Nothing to start: jobs run in the caller's thread."""

    def submit(self, job: Job) -> None:
        run_inline(job, soft_limit=True)

    def stop(self, *, wait: bool) -> None:
        """Nothing to stop: a job in progress finishes before submit() returns."""
