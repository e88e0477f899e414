"""The flat fast path of ``saferepr`` gives exactly the writer's (and Celery's) text."""

from __future__ import annotations

import random
import string
from typing import Any

from celery.utils.saferepr import saferepr as celery_saferepr

from celeriac.utils import saferepr as module
from celeriac.utils.saferepr import saferepr


def _scalar(rng: random.Random) -> Any:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.randrange(-(10**6), 10**6)
    if choice == 1:
        return rng.random() * 1000
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        alphabet = string.printable + "'\\é"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
    if choice == 4:
        return rng.randrange(10**20)
    return ""


def _flat_value(rng: random.Random) -> Any:
    size = rng.randrange(0, 8)
    kind = rng.randrange(3)
    if kind == 0:
        return tuple(_scalar(rng) for _ in range(size))
    if kind == 1:
        return [_scalar(rng) for _ in range(size)]
    return {str(_scalar(rng)): _scalar(rng) for _ in range(size)}


def _slow(value: Any, maxsize: int) -> str:
    writer = module._Writer(maxsize, 3)
    try:
        writer.value(value, depth=0)
    except module._Full:
        writer.finish_truncated()
    return "".join(writer.parts)


def test_flat_values_match_the_writer_and_celery() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        value = _flat_value(rng)
        for maxsize in (1024, 40):
            fast = saferepr(value, maxsize)
            assert fast == _slow(value, maxsize), value
            assert fast == celery_saferepr(value, maxsize), value


def test_values_past_the_budget_or_nested_take_the_writer() -> None:
    long_args = tuple(range(1000))
    assert module._flat_repr(long_args, 1024) is None
    assert saferepr(long_args, 1024) == celery_saferepr(long_args, 1024)
    assert module._flat_repr(([1],), 1024) is None
