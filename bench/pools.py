"""Per-pool figures on the embedded SQLite broker: no-op drain, sleep(0.1) drain, start-up, RSS.

Usage: python bench/pools.py [--noop 3000] [--sleepers 200] [--celery-python PATH]

For each pool it queues the tasks first, starts one `celeriac worker`, and times from the end
of the worker's banner until every result is stored. Start-up is banner-to-first-result of a
one-task run; idle RSS is the worker's process tree after a few idle seconds. With
`--celery-python`, Celery's prefork -c 2 start-up time and idle RSS are measured too
(Redis DB 14).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASKS = """
import time
from celeriac import Celery
app = Celery("pooltasks")

@app.task
def noop():
    return None

@app.task
def nap():
    time.sleep(0.1)
"""

CELERY_TASKS = """
from celery import Celery
app = Celery("pooltasks", broker="redis://127.0.0.1:6379/14", backend="redis://127.0.0.1:6379/14")

@app.task
def noop():
    return None
"""

POOLS = [
    ("prefork", 2),
    ("threads", 2),
    ("solo", 1),
    ("asyncio", 100),
    ("gevent", 100),
    ("eventlet", 100),
]


def _send(python: str, workdir: Path, task: str, count: int) -> list[str]:
    code = (
        f"from pooltasks import {task}\nprint(' '.join({task}.delay().id for _ in range({count})))"
    )
    done = subprocess.run(
        [python, "-c", code], cwd=workdir, capture_output=True, text=True, check=True, timeout=600
    )
    return done.stdout.split()


def _wait(python: str, workdir: Path, ids: list[str]) -> None:
    code = (
        "import sys\nfrom pooltasks import app\n"
        "[app.AsyncResult(i).get(timeout=600) for i in sys.argv[1:]]"
    )
    subprocess.run([python, "-c", code, *ids], cwd=workdir, check=True, timeout=900)


def _start(python: str, workdir: Path, args: list[str]) -> tuple[subprocess.Popen[str], float]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        [python, "-m", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "[queues]" in line:
            break
    return proc, time.perf_counter() - began


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the worker's own session: it and its children
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _tree_rss_kib(pid: int) -> int:
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS"))
            with open(f"/proc/{current}/task/{current}/children") as handle:
                pids.extend(int(child) for child in handle.read().split())
        except (OSError, StopIteration):
            continue
    return total


def drain(workdir: Path, pool: str, concurrency: int, task: str, count: int) -> float:
    ids = _send(sys.executable, workdir, task, count)
    args = [
        "celeriac",
        "-A",
        "pooltasks",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-l",
        "warning",
    ]
    proc, _ = _start(sys.executable, workdir, args)
    try:
        began = time.perf_counter()
        _wait(sys.executable, workdir, ids)
        return count / (time.perf_counter() - began)
    finally:
        _stop(proc)


def startup(python: str, workdir: Path, args: list[str]) -> tuple[float, int]:
    ids = _send(python, workdir, "noop", 1)
    began = time.perf_counter()
    proc, _ = _start(python, workdir, args)
    try:
        _wait(python, workdir, ids)
        ready = time.perf_counter() - began
        time.sleep(3)
        return ready, _tree_rss_kib(proc.pid)
    finally:
        _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noop", type=int, default=3000)
    parser.add_argument("--sleepers", type=int, default=200)
    parser.add_argument("--celery-python")
    options = parser.parse_args()
    print("| pool | -c | no-op drain (tasks/s) | sleep(0.1) drain (tasks/s) |")
    print("| --- | --- | --- | --- |")
    for pool, concurrency in POOLS:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            (workdir / "pooltasks.py").write_text(textwrap.dedent(TASKS))
            noop = drain(workdir, pool, concurrency, "noop", options.noop)
            naps = drain(workdir, pool, concurrency, "nap", options.sleepers)
        print(f"| {pool} | {concurrency} | {noop:,.0f} | {naps:,.1f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "pooltasks.py").write_text(textwrap.dedent(TASKS))
        args = [
            "celeriac",
            "-A",
            "pooltasks",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "-l",
            "warning",
        ]
        ready, rss = startup(sys.executable, workdir, args)
        print(
            f"celeriac prefork -c 2: start to first result {ready:.2f}s, "
            f"idle RSS {rss / 1024:.0f} MiB"
        )
    if options.celery_python:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            (workdir / "pooltasks.py").write_text(textwrap.dedent(CELERY_TASKS))
            subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)
            args = [
                "celery",
                "-A",
                "pooltasks",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
                "-l",
                "warning",
            ]
            ready, rss = startup(options.celery_python, workdir, args)
            print(
                f"Celery prefork -c 2:   start to first result {ready:.2f}s, "
                f"idle RSS {rss / 1024:.0f} MiB"
            )
            subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)


if __name__ == "__main__":
    main()
