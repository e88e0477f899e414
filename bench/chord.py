"""A chord of N ``add`` tasks with a ``tsum`` body, celeriac against Celery, in one run.

Usage: python bench/chord.py [--size 10000] [--runs 3] [--systems a,b,...]

Each system gets one worker using both cores (``-c 2``) and a producer process that sends
``chord(add.s(i, i) for i in range(N))(tsum.s())`` and waits for the sum; the figure is the
time from the call to the result (message building and publishing included), median of the
runs. Redis systems use databases 3 (celeriac) and 4 (Celery), flushed before each run.
Celery is the one installed beside celeriac (the dev extra); its worker uses its default pool.
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
from dataclasses import dataclass
from pathlib import Path

import redis

CELERIAC_URL = "redis://127.0.0.1:6379/3"
CELERY_URL = "redis://127.0.0.1:6379/4"

MODULE = """
import os
from {library} import Celery
URL = os.environ.get("CHORD_URL") or None
app = Celery("chordbench", broker=URL, backend=URL)
app.conf.worker_hijack_root_logger = False

@app.task
def add(x, y):
    return x + y

@app.task
def tsum(values):
    return sum(values)
"""

PRODUCE = """
import sys, time
from {library} import chord
from chordbench import add, tsum
n = int(sys.argv[1])
expected = sum(i + i for i in range(n))
started = time.perf_counter()
result = chord(add.s(i, i) for i in range(n))(tsum.s())
sent = time.perf_counter()
value = result.get(timeout=900)
done = time.perf_counter()
assert value == expected, (value, expected)
print(f"{{sent - started:.4f}} {{done - started:.4f}}")
"""


@dataclass(frozen=True)
class System:
    name: str
    library: str
    url: str | None
    worker: tuple[str, ...]


SYSTEMS = {
    "celeriac-redis-threads": System(
        "celeriac-redis-threads", "celeriac", CELERIAC_URL, ("-P", "threads", "-c", "2")
    ),
    "celeriac-redis-prefork": System(
        "celeriac-redis-prefork", "celeriac", CELERIAC_URL, ("-c", "2")
    ),
    "celeriac-sqlite-threads": System(
        "celeriac-sqlite-threads", "celeriac", None, ("-P", "threads", "-c", "2")
    ),
    "celery-redis-prefork": System("celery-redis-prefork", "celery", CELERY_URL, ("-c", "2")),
}


def run_once(system: System, size: int) -> tuple[float, float]:
    """(seconds to send, seconds to the result) of one chord on a fresh worker."""
    if system.url:
        redis.Redis.from_url(system.url).flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "chordbench.py").write_text(
            textwrap.dedent(MODULE.format(library=system.library))
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CHORD_URL": system.url or ""}
        worker = subprocess.Popen(
            [sys.executable, "-m", system.library, "-A", "chordbench", "worker", "-l", "warning",
             *system.worker],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_ready(system, workdir, env)
            produced = subprocess.run(
                [sys.executable, "-c", PRODUCE.format(library=system.library), str(size)],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
            )
            if produced.returncode != 0:
                raise RuntimeError(f"{system.name}: producer failed:\n{produced.stderr}")
            sent, total = (float(x) for x in produced.stdout.split())
            return sent, total
        finally:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)


def _wait_ready(system: System, workdir: Path, env: dict[str, str]) -> None:
    """One round trip through the worker (so start-up is not timed)."""
    code = "from chordbench import add\nprint(add.delay(1, 1).get(timeout=120))"
    subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, check=True, timeout=180,
        capture_output=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    options = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    for name in options.systems.split(","):
        system = SYSTEMS[name]
        sends, totals = [], []
        for _ in range(options.runs):
            sent, total = run_once(system, options.size)
            sends.append(sent)
            totals.append(total)
            print(f"{name}: sent in {sent:.3f} s, result after {total:.3f} s", flush=True)
        rows.append((name, statistics.median(sends), statistics.median(totals)))
    baseline = dict((name, total) for name, _, total in rows).get("celery-redis-prefork")
    print(f"\nchord of {options.size:,} add tasks + tsum body, median of {options.runs}")
    print(f"{'system':26} {'send s':>8} {'total s':>8} {'Celery/it':>10}")
    for name, sent, total in rows:
        ratio = f"{baseline / total:.1f}x" if baseline else "-"
        print(f"{name:26} {sent:8.3f} {total:8.3f} {ratio:>10}")


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"(ran {time.time() - started:.0f} s)")
