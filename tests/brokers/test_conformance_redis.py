"""The broker conformance suite on Redis.

Runs against the Redis server on 127.0.0.1:6379, database 10 (reserved for these tests),
each test under its own ``global_keyprefix``; a test deletes its keys when it ends. A Redis
that is down fails these tests: it is an expected service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac.brokers.base import Broker
from celeriac.brokers.redis import RedisBroker
from celeriac.testing.broker_suite import BrokerConformance, BrokerFactory

#: The database these tests may write to (and nothing else).
URL = "redis://127.0.0.1:6379/10"


def delete_prefixed(url: str, prefix: str) -> None:
    """Delete every key of ``url``'s database that starts with ``prefix`` (bounded scan)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


class TestRedisBroker(BrokerConformance):
    @pytest.fixture
    def prefix(self) -> Iterator[str]:
        prefix = f"conformance-{uuid.uuid4().hex[:10]}:"
        yield prefix
        delete_prefixed(URL, prefix)

    @pytest.fixture
    def broker_factory(self, prefix: str) -> Iterator[BrokerFactory]:
        made: list[Broker] = []

        def make(options: dict[str, Any] | None = None) -> Broker:
            broker = RedisBroker(URL, options={"global_keyprefix": prefix, **(options or {})})
            made.append(broker)
            return broker

        yield make
        for broker in made:
            broker.close()

    @pytest.fixture
    def broker(self, broker_factory: BrokerFactory) -> Broker:
        broker = broker_factory()
        broker.connect()
        return broker
