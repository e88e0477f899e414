"""The broker conformance suite on every broker this version ships."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.brokers.base import Broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.sqlite import SQLiteBroker
from celeriac.testing.broker_suite import BrokerConformance, BrokerFactory, message, numbers


class _Instances:
    """Makes brokers on one storage and closes them all at the end of the test."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self.made: list[Broker] = []

    def __call__(self, options: dict[str, Any] | None = None) -> Broker:
        broker: Broker = self._make(options)
        self.made.append(broker)
        return broker

    def close(self) -> None:
        for broker in self.made:
            broker.close()


class TestMemoryBroker(BrokerConformance):
    @pytest.fixture
    def url(self) -> Iterator[str]:
        yield f"memory://conformance-{uuid.uuid4().hex}"
        MemoryBroker.reset_all()

    @pytest.fixture
    def instances(self, url: str) -> Iterator[_Instances]:
        instances = _Instances(lambda options: MemoryBroker(url, options=options))
        yield instances
        instances.close()

    @pytest.fixture
    def broker(self, instances: _Instances) -> Broker:
        return instances()

    @pytest.fixture
    def broker_factory(self, instances: _Instances) -> BrokerFactory:
        return instances


class TestSQLiteBroker(BrokerConformance):
    @pytest.fixture
    def instances(self, tmp_path: Path) -> Iterator[_Instances]:
        url = f"sqlite:///{tmp_path / 'broker.db'}"
        instances = _Instances(lambda options: SQLiteBroker(url, options=options))
        yield instances
        instances.close()

    @pytest.fixture
    def broker(self, instances: _Instances) -> Broker:
        return instances()

    @pytest.fixture
    def broker_factory(self, instances: _Instances) -> BrokerFactory:
        return instances


# --- what only the memory broker promises --------------------------------------------------


def test_memory_default_urls_share_one_state() -> None:
    try:
        MemoryBroker("memory://").publish("shared", message(1))
        assert MemoryBroker("memory://localhost/").size("shared") == 1
        assert MemoryBroker("memory://localhost").size("shared") == 1
        assert MemoryBroker("memory://elsewhere").size("shared") == 0
    finally:
        MemoryBroker.reset_all()


def test_memory_reset_all_empties_existing_instances() -> None:
    broker = MemoryBroker("memory://reset-test")
    broker.publish("q", message(1))
    broker.publish("q", message(2), eta=time.time() + 60)
    MemoryBroker.reset_all()
    assert broker.size("q") == 0
    assert MemoryBroker("memory://reset-test").size("q") == 0


def test_memory_join_waits_for_ready_delayed_and_claimed() -> None:
    broker = MemoryBroker(f"memory://join-{uuid.uuid4().hex}")
    broker.join("q", timeout=0.1)  # an empty queue joins at once
    broker.publish("q", message(1))
    broker.publish("q", message(2), eta=time.time() + 0.3)
    with pytest.raises(TimeoutError):
        broker.join("q", timeout=0.1)
    seen: list[int] = []

    def consume() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(seen) < 2:
            got = broker.claim(["q"], limit=10, timeout=0.5)
            seen.extend(numbers(got))  # recorded before the ack that lets join return
            time.sleep(0.05)  # hold the claim for a moment: join must wait for the ack
            broker.ack(got)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    broker.join("q", timeout=5.0)
    assert sorted(seen) == [1, 2]  # the delayed message had to be claimed and acked too
    assert broker.size("q") == 0
    thread.join(5.0)
