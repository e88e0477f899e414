"""Client-side enqueue cost on Redis: celeriac's send paths against a plain redis-py loop.

Usage::

    python bench/enqueue.py                      # every case, N=10,000, 5 rounds
    python bench/enqueue.py -n 2000 --rounds 3 --cases delay,lpush
    python bench/enqueue.py --profile delay      # cProfile of one round, top functions
    BENCH_ENQUEUE_URL=redis://127.0.0.1:6379/15 python bench/enqueue.py

What it measures, for each case, over ``N`` tasks of a no-op task (nothing consumes them):

- ``delay``: ``noop.delay()`` called N times, one message per round trip;
- ``lpush``: a plain redis-py ``LPUSH`` loop of payloads the size of one such message, the
  ceiling of any one-call-one-message client;
- ``group``: ``group(noop.s() for _ in range(N)).apply_async()``, one batch;
- ``send_tasks``: ``app.send_tasks([PendingSend(...)] * N)``, the bulk API, one batch.

Each case reports the client's CPU time per task (``time.process_time``: what the client
itself spends, steady when other programs load the machine) and the wall-clock rate in
tasks/s. The cases run one after another in every round (A/B/C/D, A/B/C/D, ...) and the
median of the rounds is printed, so a busy neighbour skews all cases alike. The database of
the URL (DB 15 by default) is flushed after every case: give it a database of its own.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from collections.abc import Callable

import redis

from celeriac import Celery, group
from celeriac.app import PendingSend
from celeriac.utils.ids import new_id

URL = os.environ.get("BENCH_ENQUEUE_URL", "redis://127.0.0.1:6379/15")
QUEUE = "celeriac_enqueue_bench"
CASES = ("delay", "lpush", "group", "send_tasks")

app = Celery("enqueue_bench", broker=URL)
app.conf.task_default_queue = QUEUE
app.conf.task_ignore_result = True


@app.task
def noop() -> None:
    """Never runs: only its messages are measured."""


def message_size(client: redis.Redis) -> int:
    """Bytes of one ``noop()`` message as it sits in the Redis list."""
    noop.delay()
    size = len(client.lindex(QUEUE, 0) or b"")
    client.flushdb()
    return size


def case_delay(count: int) -> None:
    send = noop.delay
    for _ in range(count):
        send()


def case_group(count: int) -> None:
    group(noop.s() for _ in range(count)).apply_async()


def case_send_tasks(count: int) -> None:
    app.send_tasks([PendingSend(noop.name, (), {}, new_id()) for _ in range(count)])


def lpush_case(client: redis.Redis, size: int) -> Callable[[int], None]:
    payload = b"x" * size

    def case_lpush(count: int) -> None:
        push = client.lpush
        for _ in range(count):
            push(QUEUE, payload)

    return case_lpush


def timed(run: Callable[[int], None], count: int, client: redis.Redis) -> tuple[float, float]:
    """(CPU µs per task, tasks per second) of one run; the database is flushed after it."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(count)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    client.flushdb()
    return cpu / count * 1e6, count / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=10_000, help="tasks per case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--profile", choices=CASES, help="profile one round of this case")
    options = parser.parse_args()
    client = redis.Redis.from_url(URL)
    runs = {
        "delay": case_delay,
        "lpush": lpush_case(client, message_size(client)),
        "group": case_group,
        "send_tasks": case_send_tasks,
    }
    if options.profile:
        profile(runs[options.profile], options.n, client)
        return
    cases = [case for case in options.cases.split(",") if case]
    for case in cases:
        timed(runs[case], min(options.n, 500), client)  # warm-up: connections, caches
    figures: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    for _ in range(options.rounds):
        for case in cases:
            figures[case].append(timed(runs[case], options.n, client))
    report(figures, options.n)


def report(figures: dict[str, list[tuple[float, float]]], count: int) -> None:
    lpush = figures.get("lpush")
    base = statistics.median(rate for _, rate in lpush) if lpush else None
    print(f"N={count:,}, median of {len(next(iter(figures.values())))} rounds")
    for case, rows in figures.items():
        cpu = statistics.median(row[0] for row in rows)
        rate = statistics.median(row[1] for row in rows)
        ratio = f"  {rate / base:5.2f}x lpush" if base else ""
        print(f"{case:>11}: {cpu:7.1f} µs CPU/task  {rate:10,.0f} tasks/s{ratio}")


def profile(run: Callable[[int], None], count: int, client: redis.Redis) -> None:
    timed(run, min(count, 500), client)
    profiler = cProfile.Profile()
    profiler.runcall(run, count)
    client.flushdb()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
