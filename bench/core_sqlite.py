"""celeriac alone on its embedded SQLite broker: enqueue, drain and round-trip figures.

Usage: python bench/core_sqlite.py [--tasks 10000] [--concurrency 2] [--round-trips 300]

Runs one `celeriac worker -P threads` process against a fresh SQLite file in a temporary
directory and prints: enqueue rate (one delay() per task), drain rate (worker start-up
excluded: timed from the end of the worker's banner until every result is stored), and
sequential round-trip latency (delay() then get(), p50/p99).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASKS = """
from celeriac import Celery

app = Celery("benchtasks")


@app.task
def noop():
    return None
"""


def start_worker(workdir: Path, concurrency: int) -> tuple[subprocess.Popen[str], float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celeriac",
            "-A",
            "benchtasks",
            "worker",
            "-l",
            os.environ.get("BENCH_LOGLEVEL", "warning"),
            "-P",
            "threads",
            "-c",
            str(concurrency),
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the banner ends with the task list, printed just before ready
        if "benchtasks.noop" in line:
            break
    ready = time.perf_counter()
    # Keep draining stderr so the worker never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
    return proc, ready - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--round-trips", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "benchtasks.py").write_text(textwrap.dedent(TASKS))
        os.chdir(workdir)
        sys.path.insert(0, str(workdir))
        from benchtasks import app, noop  # type: ignore[import-not-found]

        noop.delay().forget()  # open the file and create the tables outside the timing
        app.broker.purge("celery")
        t0 = time.perf_counter()
        results = [noop.delay() for _ in range(options.tasks)]
        enqueue = time.perf_counter() - t0

        proc, startup = start_worker(workdir, options.concurrency)
        t1 = time.perf_counter()
        for result in results:
            result.get(timeout=120)
        drain = time.perf_counter() - t1

        latencies = []
        for _ in range(options.round_trips):
            t = time.perf_counter()
            noop.delay().get(timeout=10)
            latencies.append((time.perf_counter() - t) * 1000)
        proc.terminate()
        proc.wait(30)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"tasks:            {options.tasks}")
    print(f"enqueue:          {options.tasks / enqueue:,.0f} tasks/s")
    print(f"worker start-up:  {startup * 1000:.0f} ms")
    print(
        f"drain (-c {options.concurrency}):     {options.tasks / drain:,.0f} tasks/s",
        "(results stored)",
    )
    print(f"round trip:       p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
