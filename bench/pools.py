"""Per-pool figures: no-op drain, sleep(0.1) drain, and prefork start-up and idle memory.

Usage: python bench/pools.py [--broker sqlite|redis] [--redis-url URL] [--noop 10000]
                             [--sleep-rounds 20] [--pools prefork,threads,...] [--no-celery]

For each pool the tasks are queued first, then one `celeriac worker` starts and drains them;
results are stored (the tasks return None). A drain rate is the task count over the span of
the stored ``date_done`` stamps, from the first task's start (its completion minus the task's
own duration) to the last completion, so worker start-up and the waiting client are left out.
The sleep(0.1) drain queues ``rounds x concurrency`` tasks (the ideal rate is concurrency /
0.1 s); under the asyncio pool the task is ``async def`` with ``await asyncio.sleep(0.1)``,
under the others a blocking ``time.sleep(0.1)``.

Start-up is from process spawn to the worker's ``ready.`` log line; idle RSS and PSS are the
worker's process tree three seconds after it drained one task. Unless ``--no-celery``,
Celery's prefork -c 2 is measured the same way, always on Redis (``--celery-python`` picks
its interpreter; by default this one). On Redis every run gets a key prefix of its own in the
database of ``--redis-url``, deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The app module of a run; the broker comes from the environment (none: the SQLite file).
TASKS = """
import asyncio
import os
import time

from {package} import Celery

URL = os.environ.get("POOLS_BROKER")
app = Celery("pooltasks", broker=URL, backend=URL)
if URL:
    options = {{"global_keyprefix": os.environ["POOLS_PREFIX"]}}
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options

@app.task
def noop():
    return None

@app.task
def nap():
    time.sleep(0.1)

@app.task
async def anap():
    await asyncio.sleep(0.1)
"""

#: Celery has no ``async def`` tasks: its module leaves ``anap`` out.
CELERY_TASKS = TASKS.split("@app.task\nasync def")[0]

#: Queue ``count`` calls of a task one by one, as an application would; ids go to a file.
SEND = """
import sys
from pooltasks import app
task = app.tasks["pooltasks." + sys.argv[1]]
ids = [task.delay().id for _ in range(int(sys.argv[2]))]
open(sys.argv[3], "w").write("\\n".join(ids))
"""

#: Wait for every result (the last one sent first), then print the first and last date_done.
COLLECT = """
import sys, time
from pooltasks import app
ids = open(sys.argv[1]).read().split()
app.AsyncResult(ids[-1]).get(timeout=600, propagate=False)
deadline = time.monotonic() + 600
while True:
    metas = app.backend.get_many(ids)
    done = [m["date_done"] for m in metas.values() if m["status"] == "SUCCESS"]
    if len(done) == len(ids) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
assert len(done) == len(ids), f"{len(done)} of {len(ids)} results"
print(min(done).timestamp(), max(done).timestamp())
"""

#: Wait for one result (the start-up run), in Celery's API and celeriac's alike.
WAIT_ONE = """
import sys
from pooltasks import app
app.AsyncResult(sys.argv[1]).get(timeout=120)
"""

#: (pool, concurrency, sleep task) in the order they are reported.
POOLS = [
    ("solo", 1, "nap"),
    ("threads", 2, "nap"),
    ("prefork", 2, "nap"),
    ("asyncio", 100, "anap"),
    ("gevent", 100, "nap"),
    ("eventlet", 100, "nap"),
]


@dataclass
class Setup:
    """Where a run's processes find their broker: a directory and their environment."""

    python: str
    workdir: Path
    env: dict[str, str]

    def run(self, code: str, *args: str, timeout: float = 900) -> str:
        done = subprocess.run(
            [self.python, "-c", code, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout


@contextmanager
def setup(python: str, package: str, redis_url: str | None) -> Iterator[Setup]:
    """A fresh directory with the app module, on SQLite (no URL) or a fresh Redis prefix."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    prefix = f"bench-pools-{uuid.uuid4().hex[:8]}:"
    if redis_url:
        env.update(POOLS_BROKER=redis_url, POOLS_PREFIX=prefix)
    source = TASKS if package == "celeriac" else CELERY_TASKS
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "pooltasks.py").write_text(textwrap.dedent(source.format(package=package)))
        try:
            yield Setup(python, workdir, env)
        finally:
            if redis_url:
                _delete_prefix(redis_url, prefix)


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def _start(run: Setup, args: list[str], marker: str) -> tuple[subprocess.Popen[str], float]:
    """Start a worker in a session of its own; returns it and the seconds until ``marker``."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [run.python, "-m", *args],
        cwd=run.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=run.env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker in line:
            return proc, time.perf_counter() - began
    _stop(proc)
    raise RuntimeError(f"the worker exited before {marker!r}")


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the worker's own session: it and its children
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _tree_memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS (KiB) summed over ``pid`` and its descendants."""
    rss = pss = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
            rss += int(fields["Rss"].split()[0])
            pss += int(fields["Pss"].split()[0])
            with open(f"/proc/{current}/task/{current}/children") as handle:
                pids.extend(int(child) for child in handle.read().split())
        except (OSError, KeyError, ValueError):
            continue
    return rss, pss


def _worker_args(package: str, pool: str, concurrency: int, loglevel: str) -> list[str]:
    return [
        package,
        "-A",
        "pooltasks",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-l",
        loglevel,
    ]


def drain(run: Setup, pool: str, concurrency: int, task: str, count: int, took: float) -> float:
    """Tasks per second for ``count`` queued calls of ``task`` (each lasting ``took`` s)."""
    ids = run.workdir / f"{task}.ids"
    run.run(SEND, task, str(count), str(ids))
    proc, _ = _start(run, _worker_args("celeriac", pool, concurrency, "warning"), "[queues]")
    try:
        first, last = map(float, run.run(COLLECT, str(ids)).split())
    finally:
        _stop(proc)
    return count / (last - first + took)


def startup(run: Setup, package: str) -> tuple[float, int, int]:
    """Seconds from spawn to ``ready.``, then idle tree RSS and PSS (KiB) of prefork -c 2."""
    ids = run.workdir / "one.ids"
    run.run(SEND, "noop", "1", str(ids))
    proc, ready = _start(run, _worker_args(package, "prefork", 2, "info"), " ready.")
    try:
        run.run(WAIT_ONE, ids.read_text().strip(), timeout=120)
        time.sleep(3)
        rss, pss = _tree_memory_kib(proc.pid)
        return ready, rss, pss
    finally:
        _stop(proc)


def _pool_row(
    options: argparse.Namespace, redis_url: str | None, entry: tuple[str, int, str]
) -> str:
    pool, concurrency, sleeper = entry
    with setup(sys.executable, "celeriac", redis_url) as run:
        noop = drain(run, pool, concurrency, "noop", options.noop, 0.0)
    sleepers = options.sleep_rounds * concurrency
    with setup(sys.executable, "celeriac", redis_url) as run:
        naps = drain(run, pool, concurrency, sleeper, sleepers, 0.1)
    ideal = concurrency / 0.1
    return (
        f"| {pool} | {concurrency} | {noop:,.0f} | {naps:,.1f} ({sleepers:,} tasks, "
        f"{naps / ideal:.0%} of {ideal:,.0f}) |"
    )


def _startup_row(name: str, python: str, package: str, redis_url: str | None) -> str:
    with setup(python, package, redis_url) as run:
        ready, rss, pss = startup(run, package)
    return f"| {name} | {ready:.2f} | {rss / 1024:.0f} | {pss / 1024:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--noop", type=int, default=10_000, help="no-op tasks per drain")
    parser.add_argument("--sleep-rounds", type=int, default=20, help="sleep tasks per slot")
    parser.add_argument("--pools", default=",".join(pool for pool, _, _ in POOLS))
    parser.add_argument("--celery-python", default=sys.executable)
    parser.add_argument("--no-celery", action="store_true")
    options = parser.parse_args()
    redis_url = options.redis_url if options.broker == "redis" else None
    chosen = options.pools.split(",")
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"broker: {options.broker}; results stored; {stamp}\n")
    print("| pool | -c | no-op drain (tasks/s) | sleep(0.1) drain (tasks/s) |")
    print("| --- | --- | --- | --- |", flush=True)
    for entry in (entry for entry in POOLS if entry[0] in chosen):
        print(_pool_row(options, redis_url, entry), flush=True)
    print("\n| prefork -c 2 | start to ready (s) | idle RSS (MiB) | idle PSS (MiB) |")
    print("| --- | --- | --- | --- |")
    print(_startup_row("celeriac", sys.executable, "celeriac", redis_url), flush=True)
    if not options.no_celery:
        print(_startup_row("Celery (Redis)", options.celery_python, "celery", options.redis_url))


if __name__ == "__main__":
    main()
