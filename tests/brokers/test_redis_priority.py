"""Exact priorities on Redis inside Celery's priority-step lists.

Messages stay where Celery puts them (with the default steps ``[0, 3, 6, 9]``, priorities
0-2 share the step-0 list); the claim hands out each list's messages lowest number first,
oldest first among equals, looking at most ``PRIORITY_WINDOW`` messages deep for each one.

Shared server: 127.0.0.1:6379, database 2, a fresh ``global_keyprefix`` per test (its keys
are deleted afterwards). Worker tests start a real ``celeriac worker`` and a real ``celery
worker`` from their command lines on that database and prefix.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac.brokers.base import Delivery, Outgoing
from celeriac.brokers.redis import PRIORITY_WINDOW, RedisBroker
from celeriac.message import Message
from celeriac.testing.broker_suite import message, numbers
from tests.brokers.test_conformance_redis import delete_prefixed
from tests.helpers import WorkerProcess, write_module
from tests.interop.test_celery_redis import CeleryWorker

#: The database these tests may write to (and nothing else).
URL = "redis://127.0.0.1:6379/2"
SEP = "\x06\x16"
#: Published in this order; the claim must hand them out as 0, 0, 0, 1, 1, 1, ... 9.
SHUFFLED = [2, 1, 0, 5, 4, 3, 9, 8, 7, 6] * 3
Make = Callable[..., RedisBroker]


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"prio-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_prefixed(URL, prefix)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


@pytest.fixture
def make(prefix: str) -> Iterator[Make]:
    """``make(**options)``: a broker on database 2 under this test's prefix."""
    made: list[RedisBroker] = []

    def factory(**options: Any) -> RedisBroker:
        broker = RedisBroker(URL, options={"global_keyprefix": prefix, **options})
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        broker.close()


def exact_order(priorities: Sequence[int]) -> list[int]:
    """Message numbers by priority, then publication order."""
    return sorted(range(len(priorities)), key=lambda n: (priorities[n], n))


def claim_all(broker: RedisBroker, queue: str, count: int, limit: int) -> list[Delivery]:
    """Claim ``limit`` at a time until ``count`` arrived (bounded in calls and time)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + 20
    for _ in range(count + 5):
        if len(got) >= count or time.monotonic() > deadline:
            break
        got += broker.claim([queue], limit=min(limit, count - len(got)), timeout=1.0)
    return got


def ready_left(raw: redis.Redis, prefix: str, queue: str) -> int:
    """Messages still in the queue's step lists."""
    keys = [f"{prefix}{queue}", *(f"{prefix}{queue}{SEP}{s}" for s in (3, 6, 9))]
    return sum(int(raw.llen(key)) for key in keys)


def window_model(priorities: Sequence[int], limit: int, steps: Sequence[int]) -> list[int]:
    """The order the claim promises, computed the slow way: per claim of ``limit``, the
    step lists in order; each message taken is the best of the next PRIORITY_WINDOW."""
    lists = {
        step: [n for n, p in enumerate(priorities) if _step(p, steps) == step] for step in steps
    }
    order: list[int] = []
    while any(lists.values()):
        left = limit
        for step in steps:
            waiting = lists[step]
            while left and waiting:
                best = min(waiting[:PRIORITY_WINDOW], key=lambda n: priorities[n])
                waiting.remove(best)  # min keeps the first (oldest) of equals
                order.append(best)
                left -= 1
    return order


def _step(priority: int, steps: Sequence[int]) -> int:
    return max((s for s in steps if s <= priority), default=steps[-1])


# --- the broker ------------------------------------------------------------------------------


def test_exact_order_one_at_a_time(make: Make, raw: redis.Redis, prefix: str) -> None:
    broker = make()
    broker.publish_many([Outgoing("q", message(n, priority=p)) for n, p in enumerate(SHUFFLED)])
    # Where the messages are is Celery's layout, unchanged: four step lists.
    assert raw.llen(f"{prefix}q") == 9
    assert [raw.llen(f"{prefix}q{SEP}{s}") for s in (3, 6, 9)] == [9, 9, 3]
    got = claim_all(broker, "q", len(SHUFFLED), limit=1)
    assert numbers(got) == exact_order(SHUFFLED)
    assert [d.message.properties.get("priority", 0) for d in got] == sorted(SHUFFLED)
    assert ready_left(raw, prefix, "q") == 0
    broker.ack(got)


def test_exact_order_in_batches(make: Make, raw: redis.Redis, prefix: str) -> None:
    broker = make()
    broker.publish_many([Outgoing("q", message(n, priority=p)) for n, p in enumerate(SHUFFLED)])
    got = claim_all(broker, "q", len(SHUFFLED), limit=4)
    assert numbers(got) == exact_order(SHUFFLED)
    assert ready_left(raw, prefix, "q") == 0
    broker.ack(got)


def test_priority_zero_is_taken_in_publication_order(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    broker = make()
    broker.publish_many([Outgoing("q", message(n, priority=0)) for n in range(50)])
    got = claim_all(broker, "q", 50, limit=16)
    assert numbers(got) == list(range(50))
    assert ready_left(raw, prefix, "q") == 0
    broker.ack(got)


def test_beyond_the_window_a_better_message_waits(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    """A priority-0 message behind more than PRIORITY_WINDOW priority-2 ones is taken as
    soon as it is within the window of the oldest; nothing is lost or taken twice."""
    broker = make()
    ahead = PRIORITY_WINDOW + 6
    priorities = [2] * ahead + [0]
    broker.publish_many([Outgoing("q", message(n, priority=p)) for n, p in enumerate(priorities)])
    got = claim_all(broker, "q", len(priorities), limit=1)
    order = numbers(got)
    assert sorted(order) == list(range(len(priorities)))
    # After 7 claims the priority-0 message is the 64th oldest left: within the window.
    assert order.index(ahead) == ahead - PRIORITY_WINDOW + 1
    assert order == window_model(priorities, 1, (0, 3, 6, 9))
    assert ready_left(raw, prefix, "q") == 0
    broker.ack(got)


@pytest.mark.parametrize("limit", [1, 7, 100])
def test_deep_mixed_lists_follow_the_window_rule(
    make: Make, raw: redis.Redis, prefix: str, limit: int
) -> None:
    """Long runs of worse priorities (deeper than the window), claimed in batches: every
    message once, in the order the window rule gives."""
    rng = random.Random(limit)
    priorities: list[int] = []
    while len(priorities) < 400:
        priorities += [rng.randint(0, 9)] * rng.choice([1, 3, 40, 90])
    broker = make()
    broker.publish_many([Outgoing("q", message(n, priority=p)) for n, p in enumerate(priorities)])
    got = claim_all(broker, "q", len(priorities), limit=limit)
    order = numbers(got)
    assert len(order) == len(set(order)) == len(priorities)
    assert order == window_model(priorities, limit, (0, 3, 6, 9))
    assert ready_left(raw, prefix, "q") == 0
    broker.ack(got)


def test_celery_published_priorities_are_exact(make: Make, prefix: str) -> None:
    """kombu's envelopes (``"priority": N`` with a space) are read as well as celeriac's."""
    import celery  # type: ignore[import-untyped]

    app = celery.Celery("prio", broker=URL)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        for n, p in enumerate(SHUFFLED):
            app.send_task("prio.record", args=(n, p), queue="q", priority=p)
    finally:
        app.close()
    broker = make()
    got = claim_all(broker, "q", len(SHUFFLED), limit=3)
    assert [d.message.properties.get("priority", 0) for d in got] == sorted(SHUFFLED)
    assert [json.loads(d.message.body)[0][0] for d in got] == exact_order(SHUFFLED)
    broker.ack(got)


def test_unreadable_priority_ranks_first_and_is_kept(
    make: Make, raw: redis.Redis, prefix: str
) -> None:
    broker = make()
    broker.publish_many([Outgoing("q", message(n, priority=2)) for n in range(3)])
    text, _ = broker.envelope("q", message(3, priority=1))
    raw.lpush(f"{prefix}q", text.replace('"priority":1', '"priority":null'))
    got = claim_all(broker, "q", 4, limit=1)
    assert numbers(got) == [3, 0, 1, 2]  # kombu files a null priority under 0
    broker.ack(got)


def test_priority_is_read_from_the_properties_only(make: Make) -> None:
    """A header named "priority", a queue named "properties" and long properties (read
    beyond the last 512 bytes) do not mislead the reading."""
    broker = make()
    priorities = [2, 1, 0, 2, 1, 0]
    outgoing = []
    for n, p in enumerate(priorities):
        properties: dict[str, Any] = {"priority": p, "correlation_id": f"id-{n}"}
        if n % 2:
            properties["reply_to"] = "r" * 2000
        headers = {"task": "tests.noop", "id": f"id-{n}", "n": n, "priority": 9 - p}
        outgoing.append(Outgoing("properties", Message(b"[[], {}, {}]", headers, properties)))
    broker.publish_many(outgoing)
    got = claim_all(broker, "properties", len(priorities), limit=1)
    assert numbers(got) == exact_order(priorities)
    broker.ack(got)


def test_steps_without_zero_rank_the_wrapped_priorities(make: Make) -> None:
    """With steps [3, 6, 9], kombu files 0-2 with 9 (in the last list); there 0 comes first."""
    broker = make(priority_steps=[3, 6, 9])
    priorities = [9, 2, 4, 0, 9]
    broker.publish_many([Outgoing("q", message(n, priority=p)) for n, p in enumerate(priorities)])
    got = claim_all(broker, "q", len(priorities), limit=1)
    assert numbers(got) == [2, 3, 1, 0, 4]
    broker.ack(got)


def test_a_given_back_message_keeps_its_rank(make: Make) -> None:
    broker = make(visibility_timeout=60)
    broker.publish_many([Outgoing("q", message(n, priority=p)) for n, p in enumerate([2, 1, 0])])
    [first] = broker.claim(["q"], limit=1, timeout=1)
    assert numbers([first]) == [2]
    broker.reject([first], requeue=True)
    got = claim_all(broker, "q", 3, limit=1)
    assert numbers(got) == [2, 1, 0]
    broker.ack(got)


# --- workers ---------------------------------------------------------------------------------

TASKS = """
import os
import time
from pathlib import Path

import celery
import celeriac

URL = os.environ["PRIO_URL"]
QUEUE = os.environ["PRIO_QUEUE"]
MARKS = Path(os.environ["PRIO_MARKS"])
settings = dict(
    broker_transport_options={"global_keyprefix": os.environ["PRIO_PREFIX"]},
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
)

celery_app = celery.Celery("prio", broker=URL)
celery_app.conf.update(settings, broker_connection_retry_on_startup=True)
celeriac_app = celeriac.Celery("prio", broker=URL)
celeriac_app.conf.update(settings)


def define(app, runner):
    @app.task(name="prio.record")
    def record(number, priority):
        with open(MARKS, "a") as marks:
            marks.write(f"{runner} {number} {priority}\\n")


define(celery_app, "celery")
define(celeriac_app, "celeriac")
"""


class Setup:
    """One test's directory, prefix, queue and marker file, and the environment naming them."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.queue = f"prio-{uuid.uuid4().hex[:8]}"
        self.marks = directory / "marks"
        self.env = {
            **os.environ,
            "PRIO_URL": URL,
            "PRIO_PREFIX": prefix,
            "PRIO_QUEUE": self.queue,
            "PRIO_MARKS": str(self.marks),
        }
        write_module(directory, "prio_tasks", TASKS)

    def runs(self) -> list[tuple[str, int, int]]:
        if not self.marks.exists():
            return []
        lines = [line.split() for line in self.marks.read_text().splitlines()]
        return [(runner, int(number), int(priority)) for runner, number, priority in lines]

    def wait_for(self, count: int, timeout: float = 60) -> list[tuple[str, int, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.runs()) < count:
            time.sleep(0.05)
        return self.runs()

    def send(self, library: str, priorities: Sequence[int]) -> None:
        """Publish ``prio.record(n, p)`` for each priority from a producer process."""
        code = (
            "import prio_tasks\n"
            f"app = prio_tasks.{library}_app\n"
            f"for n, p in enumerate({list(priorities)!r}):\n"
            "    app.send_task('prio.record', args=(n, p), priority=p)\n"
            "app.close()\n"
        )
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def setup(tmp_path: Path, prefix: str) -> Setup:
    return Setup(tmp_path, prefix)


def test_celery_worker_consumes_every_celeriac_priority(setup: Setup) -> None:
    """Messages stay in Celery's step lists, so a Celery worker finds every one of them."""
    priorities = list(range(9, -1, -1))
    setup.send("celeriac", priorities)
    with CeleryWorker("prio_tasks:celery_app", setup.directory, setup.queue, setup.env):
        runs = setup.wait_for(len(priorities))
    assert sorted(priority for _, _, priority in runs) == list(range(10))
    assert {runner for runner, _, _ in runs} == {"celery"}


def test_celeriac_worker_runs_celery_priorities_in_exact_order(setup: Setup) -> None:
    setup.send("celery", SHUFFLED)
    worker = WorkerProcess(
        "prio_tasks:celeriac_app", setup.directory, "-Q", setup.queue, "-P", "solo", env=setup.env
    )
    with worker:
        runs = setup.wait_for(len(SHUFFLED))
    assert [priority for _, _, priority in runs] == sorted(SHUFFLED), worker.output
    assert [number for _, number, _ in runs] == exact_order(SHUFFLED)
