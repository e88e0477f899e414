"""The consuming side of the RabbitMQ broker: frames read in bulk, acks folded into
``multiple`` acks without settling a message not named, and the prefetch window."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest
from amqp.exceptions import UnexpectedFrame

from celeriac.brokers.amqp import AMQPBroker
from celeriac.brokers.amqp_frames import FrameReader
from celeriac.brokers.base import Outgoing
from celeriac.testing.broker_suite import claim_until, message, numbers
from tests.amqp.rabbit import url_for


def _frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_frames_cut_from_one_read_and_across_reads(pair) -> None:
    ours, theirs = pair
    third = _frame(3, 1, b"body" * 100)
    theirs.sendall(_frame(1, 1, b"method") + _frame(2, 1, b"header") + third[:50])
    reader = FrameReader(ours, pending=b"")
    assert reader.read(1.0) == [(1, 1, b"method"), (2, 1, b"header")]
    assert reader.read(0.05) == []  # half a frame is not a frame
    theirs.sendall(third[50:])
    assert reader.read(1.0) == [(3, 1, b"body" * 100)]


def test_bytes_read_ahead_by_py_amqp_come_first(pair) -> None:
    ours, theirs = pair
    first = _frame(8, 0, b"")
    reader = FrameReader(ours, pending=first[:3])
    theirs.sendall(first[3:] + _frame(1, 2, b"x"))
    assert reader.read(1.0) == [(8, 0, b""), (1, 2, b"x")]


def test_a_broken_stream_or_a_closed_socket_raises(pair) -> None:
    ours, theirs = pair
    reader = FrameReader(ours)
    theirs.sendall(_frame(1, 1, b"method")[:-1] + b"\x00")
    with pytest.raises(UnexpectedFrame):
        reader.read(1.0)
    closed = FrameReader(theirs)
    ours.close()
    with pytest.raises(ConnectionError):
        closed.read(1.0)


@pytest.fixture
def make(vhost: str) -> Iterator[object]:
    made: list[AMQPBroker] = []

    def build() -> AMQPBroker:
        broker = AMQPBroker(url_for(vhost))
        made.append(broker)
        return broker

    yield build
    for broker in made:
        broker.close()


def test_acks_settle_exactly_the_messages_named(make) -> None:
    broker = make()
    broker.publish_many([Outgoing("acks", message(n)) for n in range(10)])
    got = claim_until(broker, ["acks"], 10, within=5.0)
    by_number = {numbers([d])[0]: d for d in got}
    # 0, 1 and 2 stay unsettled below the others: no multiple ack may reach them.
    broker.ack([by_number[n] for n in (3, 4, 6, 9, 8, 7)])
    broker.reject([by_number[5]], requeue=False)
    broker.close()  # the server gives back what is unsettled
    other = make()
    back = claim_until(other, ["acks"], 3, within=5.0)
    assert sorted(numbers(back)) == [0, 1, 2]
    assert all(d.redelivered for d in back)
    other.ack(back)
    assert other.claim(["acks"], limit=10, timeout=0.3) == []
    assert other.size("acks") == 0


def _prefetch_of(vhost: str) -> tuple[int, int, int]:
    """(per-consumer prefetch, channel-wide prefetch, unacked) of the vhost's channels."""
    rows = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_channels",
            "vhost",
            "prefetch_count",
            "global_prefetch_count",
            "messages_unacknowledged",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    mine = [line.split("\t") for line in rows.splitlines() if line.startswith(vhost + "\t")]
    return (
        max(int(row[1]) for row in mine),
        max(int(row[2]) for row in mine),
        max(int(row[3]) for row in mine),
    )


def test_window_is_the_claim_limit_and_stretches_for_a_holder(make, vhost: str) -> None:
    broker = make()
    broker.publish_many([Outgoing("window", message(n)) for n in range(10)])
    first = broker.claim(["window"], limit=3, timeout=5.0)
    assert numbers(first) == [0, 1, 2]
    time.sleep(0.3)
    assert _prefetch_of(vhost) == (3, 0, 3)  # one queue: a per-consumer window
    # Holding all three and asking for more: after a grace the window stretches.
    more = claim_until(broker, ["window"], 3, within=5.0, limit=3)
    assert numbers(more) == [3, 4, 5]
    time.sleep(0.3)
    assert _prefetch_of(vhost) == (0, 6, 6)  # channel-wide from then on
    broker.ack(first + more)
    rest = claim_until(broker, ["window"], 3, within=5.0, limit=3)
    assert numbers(rest) == [6, 7, 8]
    time.sleep(0.3)
    assert _prefetch_of(vhost)[1] == 3  # shrunk back once a claim fits the window
    broker.ack(rest)
    last = claim_until(broker, ["window"], 1, within=5.0)
    assert numbers(last) == [9]
    broker.ack(last)
