"""W6, the ceilings no task queue can pass on this machine.

- ``redis-benchmark`` LPUSH/RPOP with the payload size of a Celery-protocol task message,
  one connection (like one producer) and 50 connections (the tool's default);
- a plain redis-py loop: LPUSH N payloads one by one, then RPOP them one by one;
- a bare Python loop calling a no-op function.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
from typing import Any

from systems.base import REDIS_DB, REDIS_URL, flush_redis

KEY = "celeriac_bench:ceiling"


def payload_size() -> int:
    """Bytes of one Celery-protocol message for ``noop()`` as it sits in a Redis list."""
    from celery import Celery

    app = Celery("benchtasks", broker=REDIS_URL)
    app.conf.task_default_queue = KEY
    app.send_task("benchtasks.noop")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return len(client.lindex(KEY, 0) or b"")
    finally:
        client.close()
        flush_redis()


def redis_benchmark(size: int, clients: int, requests: int) -> dict[str, float]:
    """Requests per second of redis-benchmark's LPUSH and RPOP tests."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return {}
    argv = [tool, "-h", "127.0.0.1", "-p", "6379", "--dbnum", str(REDIS_DB), "-c", str(clients)]
    argv += ["-n", str(requests), "-d", str(size), "-t", "lpush,rpop", "--csv"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        flush_redis()
    rates = {}
    for row in csv.reader(io.StringIO(out)):
        if row and row[0] in ("LPUSH", "RPOP"):
            rates[row[0].lower()] = float(row[1])
    return rates


def redis_py_loop(size: int, count: int) -> dict[str, float]:
    """Operations per second of LPUSH then RPOP, one command per round trip, with redis-py."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    payload = b"x" * size
    try:
        client.delete(KEY)
        t0 = time.perf_counter()
        for _ in range(count):
            client.lpush(KEY, payload)
        t1 = time.perf_counter()
        for _ in range(count):
            client.rpop(KEY)
        t2 = time.perf_counter()
    finally:
        client.close()
        flush_redis()
    return {"lpush": count / (t1 - t0), "rpop": count / (t2 - t1)}


def function_calls(count: int) -> float:
    """Calls per second of a no-op Python function in a for loop."""

    def noop() -> None:
        return None

    t0 = time.perf_counter()
    for _ in range(count):
        noop()
    return count / (time.perf_counter() - t0)


def ceilings(requests: int, count: int) -> dict[str, Any]:
    import redis

    size = payload_size()
    bench_1 = redis_benchmark(size, 1, requests)
    bench_50 = redis_benchmark(size, 50, requests)
    loop = redis_py_loop(size, count)
    return {
        "w6_payload_bytes": size,
        "w6_redis_benchmark_c1_lpush": bench_1.get("lpush"),
        "w6_redis_benchmark_c1_rpop": bench_1.get("rpop"),
        "w6_redis_benchmark_c50_lpush": bench_50.get("lpush"),
        "w6_redis_benchmark_c50_rpop": bench_50.get("rpop"),
        "w6_redis_py_lpush": loop["lpush"],
        "w6_redis_py_rpop": loop["rpop"],
        "w6_function_calls": function_calls(count * 100),
        "w6_redis_py_version": redis.__version__,
    }
