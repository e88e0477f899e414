"""What a run does: which systems, which driver jobs, how big, how many times.

User-facing workload names map to driver jobs: W1 and W2 are measured in the same ``drain``
job (the enqueue of W1 fills the queue that W2 drains), W3 and W4 share the ``startup`` job.
"""

from __future__ import annotations

from dataclasses import dataclass

from systems import ADAPTERS

WORKLOAD_JOBS = {
    "W1": ("drain", "bulk"),
    "W2": ("drain",),
    "W2r": ("drain_results",),
    "W3": ("startup",),
    "W4": ("startup",),
    "W5": ("io",),
    "W6": ("w6",),
}
JOB_ORDER = ("w6", "drain", "drain_results", "bulk", "startup", "io")
#: Systems without a bulk API skip the bulk job.
NO_BULK = {
    "huey-redis",
    "huey-sqlite",
    "arq-redis",
    "taskiq-redis",
}
#: --quick leaves out the second pool of celeriac and of each Celery broker (under 3 minutes).
QUICK_SKIP = {"celeriac-sqlite-prefork", "celery-redis-threads", "celery-rabbitmq-threads"}


@dataclass(frozen=True)
class Sizes:
    tasks: int  # W1, W2
    results_tasks: int  # W2r
    bulk_tasks: int  # W1 bulk
    io_tasks: int  # W5
    round_trips: int  # W3
    enqueue_cap: float  # seconds: the longest one-by-one enqueue phase
    cap: float  # seconds: the longest drain or round-trip phase
    idle: float  # W4 idle time before memory is read
    runs: int
    attempts: int  # at most this many attempts per run when the machine disturbs them
    quiet_wait: float  # seconds: the longest wait for a quiet machine before an attempt
    retry_budget: float  # seconds: the most spent on repeats and quiet waits in one run

    def driver_args(self, job: str) -> list[str]:
        tasks = {"drain_results": self.results_tasks, "bulk": self.bulk_tasks}.get(job, self.tasks)
        return [
            f"--tasks={tasks}",
            f"--io-tasks={self.io_tasks}",
            f"--round-trips={self.round_trips}",
            f"--enqueue-cap={self.enqueue_cap}",
            f"--cap={self.cap}",
            f"--idle={self.idle}",
        ]


FULL = Sizes(
    tasks=10_000,
    results_tasks=5_000,
    bulk_tasks=5_000,
    io_tasks=1_000,
    round_trips=300,
    enqueue_cap=3.0,
    cap=5.0,
    idle=1.0,
    runs=3,
    attempts=3,
    quiet_wait=10.0,
    retry_budget=150.0,
)
QUICK = Sizes(
    tasks=1_000,
    results_tasks=1_000,
    bulk_tasks=1_000,
    io_tasks=500,
    round_trips=50,
    enqueue_cap=2.0,
    cap=2.0,
    idle=0.5,
    runs=1,
    attempts=1,
    quiet_wait=1.0,
    retry_budget=10.0,
)


def systems(only: str | None, quick: bool) -> list[str]:
    """The systems selected by ``--only`` (names or name prefixes, comma-separated)."""
    names = list(ADAPTERS)
    if only:
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        unknown = [w for w in wanted if not any(n.startswith(w) for n in names)]
        if unknown:
            raise SystemExit(f"unknown system(s): {', '.join(unknown)}; known: {', '.join(names)}")
        return [n for n in names if any(n == w or n.startswith(w) for w in wanted)]
    return [n for n in names if not (quick and n in QUICK_SKIP)]


def jobs(workloads: str | None) -> list[str]:
    """Driver jobs for ``--workloads`` (W1,W2,...), in running order."""
    if not workloads:
        return list(JOB_ORDER)
    chosen: set[str] = set()
    for name in workloads.split(","):
        key = name.strip().upper().replace("W2R", "W2r")
        if key not in WORKLOAD_JOBS:
            raise SystemExit(f"unknown workload {name!r}; known: {', '.join(WORKLOAD_JOBS)}")
        chosen.update(WORKLOAD_JOBS[key])
    return [job for job in JOB_ORDER if job in chosen]


def venv_of(system: str) -> str:
    return "peers" if system == "ceilings" else ADAPTERS[system][1]
