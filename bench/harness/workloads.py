"""The workloads, each a function of one session returning flat metrics for the report.

- ``drain``: W1 (enqueue N one by one, timed) then W2 (start a worker, drain them).
- ``drain_results``: the same with results stored (W2r).
- ``bulk``: W1 with the library's bulk API.
- ``startup``: W4 (start-up time to the first task, idle memory) then W3 (round trips).
- ``io``: W5, N tasks that sleep 0.1 s, on the system's I/O pool.

Every timing of task completion comes from the completion listener (one byte per task).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.cpu import Snapshot, Usage, tree_memory, usage
from harness.process import WorkerProcess
from harness.session import Session
from harness.stats import median, percentile

FOREVER = float("inf")


@dataclass(frozen=True)
class Sizes:
    tasks: int = 10_000  # W1, W2, W2r
    io_tasks: int = 1_000  # W5
    round_trips: int = 300  # W3
    enqueue_cap: float = 3.0  # seconds: the longest one-by-one enqueue phase
    cap: float = 5.0  # seconds: the longest drain or round-trip phase
    startup_timeout: float = 60.0
    idle: float = 1.0  # W4: seconds idle before the worker's memory is read


class WorkerFailed(RuntimeError):
    """The worker exited or never completed a task; the message carries its log's tail."""


class Metrics(dict[str, Any]):
    """Flat metrics plus the disturbance of the windows they were measured in."""

    def window(self, use: Usage) -> None:
        self["disturbance"] = max(self.get("disturbance", 0.0), round(use.disturbance, 3))
        self.setdefault("windows", []).append(use.as_dict())


def _wait(s: Session, worker: WorkerProcess, count: int, timeout: float) -> bool:
    """Wait for ``count`` completions; raise if the worker dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.listener.wait_for(count, min(0.5, max(0.0, deadline - time.monotonic()))):
            return True
        if not worker.alive():
            code = worker.proc.returncode if worker.proc else None
            raise WorkerFailed(f"worker exited ({code}):\n{worker.log_tail()}")
    return s.listener.count >= count


def _enqueue(s: Session, m: Metrics, prefix: str, task: str, count: int, cap: float) -> int:
    s.system.enqueue(task, 1, FOREVER)  # warm-up: connections open, tables created
    before = Snapshot.take()
    t0 = time.perf_counter()
    sent = s.system.enqueue(task, count, t0 + cap)
    elapsed = time.perf_counter() - t0
    use = usage(before, Snapshot.take(), set(), s.servers)
    m.window(use)
    m[f"{prefix}_tasks"] = sent
    m[f"{prefix}_api"] = s.system.call_api
    m[f"{prefix}_rate"] = sent / elapsed
    m[f"{prefix}_client_cpu_us"] = (use.ours_cpu - use.broker_cpu) / sent * 1e6
    m[f"{prefix}_broker_cpu_us"] = use.broker_cpu / sent * 1e6
    return sent + 1 + _top_up(s, task, count - sent)


def _top_up(s: Session, task: str, missing: int) -> int:
    """Queue, untimed, what the capped enqueue left out, so every drain drains N tasks
    (with the bulk API where the library has one and the task is ``noop``)."""
    if missing <= 0:
        return 0
    if s.system.bulk_api is not None and task == "noop":
        return s.system.enqueue_bulk(missing)
    return s.system.enqueue(task, missing, FOREVER)


def _drain(s: Session, m: Metrics, prefix: str, queued: int, sizes: Sizes, io: bool) -> None:
    with s.worker(io) as worker:
        if not _wait(s, worker, 1, sizes.startup_timeout):
            raise WorkerFailed(
                f"no task completed in {sizes.startup_timeout}s:\n{worker.log_tail()}"
            )
        before, done_before, tree = Snapshot.take(), s.listener.count, worker.tree()
        _wait(s, worker, queued, sizes.cap)
        count, first, last = s.listener.progress()
        after, done_after = Snapshot.take(), s.listener.count
        tree |= worker.tree()
        m[f"{prefix}_command"] = _shown(worker.argv)
        m[f"{prefix}_startup_s"] = first - worker.spawned_at
    use = usage(before, after, tree, s.servers)
    m.window(use)
    measured = max(1, done_after - done_before)
    m[f"{prefix}_tasks"] = count
    m[f"{prefix}_complete"] = count >= queued
    m[f"{prefix}_seconds"] = last - first
    m[f"{prefix}_rate"] = (count - 1) / max(last - first, 1e-9)
    m[f"{prefix}_worker_cpu_us"] = use.worker_cpu / measured * 1e6
    m[f"{prefix}_broker_cpu_us"] = use.broker_cpu / measured * 1e6


def drain(s: Session, sizes: Sizes) -> Metrics:
    """W1 (one by one) then W2: a worker drains what was queued."""
    m = Metrics()
    queued = _enqueue(s, m, "w1", "noop", sizes.tasks, sizes.enqueue_cap)
    _drain(s, m, "w2", queued, sizes, io=False)
    return m


def drain_results(s: Session, sizes: Sizes) -> Metrics:
    """W2r: as W2 with results stored; checks they all are."""
    m = Metrics()
    queued = _enqueue(s, m, "w1r", "noop", sizes.tasks, sizes.enqueue_cap)
    _drain(s, m, "w2r", queued, sizes, io=False)
    m["w2r_results_stored"] = _results_settled(s, m["w2r_tasks"])
    return m


def _results_settled(s: Session, expected: int) -> int | None:
    """Results counted once the backend holds ``expected`` of them (or after 10 s)."""
    deadline = time.monotonic() + 10
    stored = s.system.results_stored()
    while stored is not None and stored < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = s.system.results_stored()
    return stored


def bulk(s: Session, sizes: Sizes) -> Metrics:
    """W1 with the library's bulk API."""
    m = Metrics()
    s.system.enqueue("noop", 1, FOREVER)
    before = Snapshot.take()
    t0 = time.perf_counter()
    sent = s.system.enqueue_bulk(sizes.tasks)
    elapsed = time.perf_counter() - t0
    use = usage(before, Snapshot.take(), set(), s.servers)
    m.window(use)
    m["w1b_tasks"] = sent
    m["w1b_rate"] = sent / elapsed
    m["w1b_client_cpu_us"] = (use.ours_cpu - use.broker_cpu) / sent * 1e6
    m["w1b_broker_cpu_us"] = use.broker_cpu / sent * 1e6
    m["w1b_api"] = s.system.bulk_api
    return m


def startup(s: Session, sizes: Sizes) -> Metrics:
    """W4 (start-up to the first task done, then idle memory) and W3 on the same worker."""
    m = Metrics()
    s.system.enqueue("noop", 1, FOREVER)
    with s.worker() as worker:
        before = Snapshot.take()
        if not _wait(s, worker, 1, sizes.startup_timeout):
            raise WorkerFailed(
                f"no task completed in {sizes.startup_timeout}s:\n{worker.log_tail()}"
            )
        m.window(usage(before, Snapshot.take(), worker.tree(), s.servers))
        m["w4_command"] = _shown(worker.argv)
        m["w4_startup_s"] = s.listener.progress()[1] - worker.spawned_at
        time.sleep(sizes.idle)
        m["w4_rss_mib"], m["w4_pss_mib"] = tree_memory(worker.pid)
        m["w4_processes"] = len(worker.tree())
        _round_trips(s, m, worker, sizes)
    return m


def _round_trips(s: Session, m: Metrics, worker: WorkerProcess, sizes: Sizes) -> None:
    latencies: list[float] = []
    before, tree = Snapshot.take(), worker.tree()
    stop_at = time.perf_counter() + sizes.cap
    while len(latencies) < sizes.round_trips and time.perf_counter() < stop_at:
        target = s.listener.count + 1
        sent_at = time.perf_counter()
        s.system.enqueue("noop", 1, FOREVER)
        if not _wait(s, worker, target, 30):
            raise WorkerFailed(f"round trip {len(latencies)} never completed")
        latencies.append((s.listener.progress()[2] - sent_at) * 1000)
    m.window(usage(before, Snapshot.take(), tree, s.servers))
    m["w3_round_trips"] = len(latencies)
    m["w3_p50_ms"] = median(latencies)
    m["w3_p99_ms"] = percentile(latencies, 0.99)
    m["w3_max_ms"] = max(latencies)


def io(s: Session, sizes: Sizes) -> Metrics:
    """W5: N tasks that sleep 0.1 s, drained by the system's recommended I/O pool."""
    m = Metrics()
    queued = s.system.enqueue("sleep", sizes.io_tasks, FOREVER)
    _drain(s, m, "w5", queued, sizes, io=True)
    # The first completion comes 0.1 s after the first task started: count from its start.
    m["w5_seconds"] += 0.1
    m["w5_startup_s"] -= 0.1
    m["w5_rate"] = m["w5_tasks"] / m["w5_seconds"]
    m["w5_pool"] = s.system.io_pool
    return m


def _shown(argv: list[str]) -> str:
    """The command line as a reader would type it (console script by name, not full path)."""
    return " ".join([argv[0].rsplit("/", 1)[-1], *argv[1:]])


WORKLOADS = {
    "drain": drain,
    "drain_results": drain_results,
    "bulk": bulk,
    "startup": startup,
    "io": io,
}
