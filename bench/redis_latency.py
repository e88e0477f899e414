"""celeriac on Redis: sequential round-trip latency, drain rate and worker CPU per task.

Usage: python bench/redis_latency.py [--round-trips 300] [--drain 10000] [--pool threads]
       [--concurrency 2] [--profile DIR] [--url redis://127.0.0.1:6379/13]

Starts one ``celeriac worker`` process from the CLI on its own Redis database and queue
name, then:

* round trips: ``add.delay(i, i).get()`` one after the other, on an idle, warm worker
  (p50/p99 in milliseconds, and the worker's CPU per round trip);
* drain (``--drain N``, 0 skips it): N no-op tasks are queued first, then the worker is
  started and the rate is timed from the end of its banner until every result is stored
  (with ``--ignore-result``: until the queue and the held-message records are empty, so
  the last few tasks may still be running); the worker's CPU (its process tree: prefork
  children included) per task.

With ``--profile DIR``, py-spy records the worker and this client during the round trips
(``--native --idle``, speedscope files in DIR; the worker's children too).
``BENCH_WORKER_ARGS`` adds worker options (``BENCH_WORKER_ARGS=-E``: with task events).
The database is flushed before and after the run: do not point it at one holding data.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

TASKS = """
from celeriac import Celery

app = Celery("latencytasks", broker={url!r}, backend={url!r})
app.conf.task_default_queue = {queue!r}


@app.task
def add(x, y):
    return x + y


@app.task(ignore_result={ignore})
def noop():
    return None
"""


def _worker(workdir: Path, pool: str, concurrency: int, queue: str) -> subprocess.Popen[str]:
    """A worker started from the CLI; returns once its banner listed the tasks."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "celeriac", "-A", "latencytasks", "worker"),
            *("-l", os.environ.get("BENCH_LOGLEVEL", "warning")),
            *("-P", pool, "-c", str(concurrency), "-Q", queue),
            *os.environ.get("BENCH_WORKER_ARGS", "").split(),  # e.g. "-E" (task events)
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "latencytasks.noop" in line:
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
    return proc


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for child in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _profilers(directory: Path, worker: int) -> list[subprocess.Popen[bytes]]:
    directory.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    common = ["record", "--native", "--idle", "--format", "speedscope", "--rate", "1000"]
    targets = {"worker": (worker, ["--subprocesses"]), "client": (os.getpid(), [])}
    procs = []
    for name, (pid, extra) in targets.items():
        out = directory / f"{name}.speedscope.json"
        cmd = [str(spy), *common, *extra, "--pid", str(pid), "-o", str(out)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # let py-spy attach before the timed part
    return procs


def _round_trips(add: object, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        value = add.delay(i, i).get(timeout=10)  # type: ignore[attr-defined]
        latencies.append((time.perf_counter() - started) * 1000)
        assert value == 2 * i, value
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--drain", type=int, default=0, help="no-op tasks to drain (0: skip)")
    parser.add_argument("--ignore-result", action="store_true", help="drain without results")
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--profile", type=Path, help="write py-spy profiles into this folder")
    options = parser.parse_args()
    queue = f"latency-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "latencytasks.py").write_text(
            textwrap.dedent(
                TASKS.format(url=options.url, queue=queue, ignore=options.ignore_result)
            )
        )
        sys.path.insert(0, str(workdir))
        from latencytasks import add, app, noop  # type: ignore[import-not-found]

        redis_client = app.broker._client  # the broker's own connection pool
        redis_client.flushdb()
        try:
            if options.drain:
                _drain(workdir, options, queue, noop)
            if options.round_trips:
                _latency(workdir, options, queue, add)
        finally:
            redis_client.flushdb()


def _drain(workdir: Path, options: argparse.Namespace, queue: str, noop: object) -> None:
    results = [noop.delay() for _ in range(options.drain)]  # type: ignore[attr-defined]
    proc = _worker(workdir, options.pool, options.concurrency, queue)
    try:
        cpu0, t0 = _tree_cpu(proc.pid), time.perf_counter()
        if options.ignore_result:
            _until_drained(noop.app.broker._client, queue, time.monotonic() + 300)
        else:
            for result in results:
                result.get(timeout=300)
        elapsed, cpu = time.perf_counter() - t0, _tree_cpu(proc.pid) - cpu0
    finally:
        _stop(proc)
    what = "results ignored" if options.ignore_result else "results stored"
    print(
        f"drain ({options.pool} -c {options.concurrency}, {what}): "
        f"{options.drain / elapsed:,.0f} tasks/s, "
        f"worker CPU {cpu / options.drain * 1e6:.0f} us/task"
    )


def _until_drained(client: Any, queue: str, deadline: float) -> None:
    """Poll until the queue and kombu's held-message hash are both empty."""
    while time.monotonic() < deadline:
        with client.pipeline(transaction=False) as pipe:
            pipe.llen(queue).hlen("unacked")
            if not any(pipe.execute()):
                return
        time.sleep(0.002)
    raise TimeoutError("the worker did not drain the queue in time")


def _latency(workdir: Path, options: argparse.Namespace, queue: str, add: object) -> None:
    proc = _worker(workdir, options.pool, options.concurrency, queue)
    profilers: list[subprocess.Popen[bytes]] = []
    try:
        _round_trips(add, 20)  # warm up: connections, subscriptions, imports
        if options.profile:
            profilers = _profilers(options.profile, proc.pid)
        cpu0 = _tree_cpu(proc.pid)
        latencies = _round_trips(add, options.round_trips)
        cpu = _tree_cpu(proc.pid) - cpu0
    finally:
        for spy in profilers:
            spy.send_signal(signal.SIGINT)
        for spy in profilers:
            spy.wait(60)
        _stop(proc)
    print(
        f"round trip ({options.pool} -c {options.concurrency}): "
        f"p50 {statistics.median(latencies):.3f} ms, p99 {_percentile(latencies, 0.99):.3f} ms, "
        f"min {min(latencies):.3f} ms, worker CPU {cpu / len(latencies) * 1e6:.0f} us/trip"
    )


if __name__ == "__main__":
    main()
