"""The expired-backlog scenario: 5,000 expired tasks queued ahead of 10 fresh ones.

Usage: python bench/expired_backlog.py [--expired 5000] [--celery-python PATH]

For celeriac (embedded SQLite) and, when a Python with Celery is given, for Celery (Redis DB 14,
prefork -c 2), it queues the expired messages, then the fresh ones, starts one worker and
reports how long after the worker's banner the 10 fresh results were all stored.
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

CELERIAC_TASKS = """
from celeriac import Celery
app = Celery("backlog")

@app.task
def work(n):
    return n
"""

CELERY_TASKS = """
from celery import Celery
app = Celery("backlog", broker="redis://127.0.0.1:6379/14", backend="redis://127.0.0.1:6379/14")

@app.task
def work(n):
    return n
"""

FILL = """
import datetime as dt
from backlog import work
past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
for n in range({expired}):
    work.apply_async((n,), expires=past)
print(" ".join(work.delay(n).id for n in range(10)))
"""

WAIT = """
import sys
from backlog import app
ids = sys.argv[1:]
print(sorted(app.AsyncResult(i).get(timeout=1800) for i in ids))
"""


def measure(python: str, module: str, worker: list[str], expired: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "backlog.py").write_text(textwrap.dedent(module))
        fill = subprocess.run(
            [python, "-c", FILL.format(expired=expired)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        ids = fill.stdout.split()
        proc = subprocess.Popen(
            [python, "-m", *worker],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # the banner must arrive when printed
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "[queues]" in line:
                    break
            started = time.perf_counter()
            subprocess.run(
                [python, "-c", WAIT, *ids],
                cwd=workdir,
                check=True,
                timeout=1800,
                capture_output=True,
            )
            return time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(60)


def main() -> None:
    # A SIGTERM (e.g. from `timeout`) must still stop the worker this script started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser()
    parser.add_argument("--expired", type=int, default=5000)
    parser.add_argument("--celery-python", help="a Python that has celery[redis] installed")
    options = parser.parse_args()
    worker = ["celeriac", "-A", "backlog", "worker", "-P", "threads", "-c", "2", "-l", "warning"]
    seconds = measure(sys.executable, CELERIAC_TASKS, worker, options.expired)
    print(f"celeriac (SQLite):   fresh tasks done {seconds:.2f}s after the worker started")
    if options.celery_python:
        subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)
        worker = ["celery", "-A", "backlog", "worker", "-P", "prefork", "-c", "2", "-l", "warning"]
        seconds = measure(options.celery_python, CELERY_TASKS, worker, options.expired)
        print(f"Celery (Redis):      fresh tasks done {seconds:.2f}s after the worker started")
        subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)


if __name__ == "__main__":
    main()
