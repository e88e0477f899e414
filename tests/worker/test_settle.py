"""The settler: writes in rounds, results before acks, larger rounds under load."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from celeriac import Celery, states
from celeriac.backends.base import StoreRequest
from celeriac.brokers.base import Delivery
from celeriac.task import Context
from celeriac.worker import settle
from celeriac.worker.settle import Settler


class _Recorder:
    """Stands for both the broker and the backend: notes each write, in order."""

    acks_gate_delivery = False

    def __init__(self, round_trip: float = 0.0) -> None:
        self.writes: list[tuple[str, int]] = []
        self.round_trip = round_trip

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        time.sleep(self.round_trip)
        self.writes.append(("ack", len(deliveries)))

    def store_results(self, requests: Sequence[StoreRequest]) -> None:
        self.writes.append(("store", len(requests)))


def _deliveries(app: Celery, n: int) -> list[Delivery]:
    for _ in range(n):
        app.send_task("t.noop")
    return app.broker.claim(["celery"], limit=n, timeout=1.0)


def test_results_are_written_before_acks_in_a_round() -> None:
    app = Celery("settle", broker="memory://")
    recorder = _Recorder()
    settler = Settler(recorder, recorder)  # type: ignore[arg-type]
    [delivery] = _deliveries(app, 1)
    settler.store(StoreRequest("t1", 1, states.SUCCESS, None, Context(id="t1")))
    settler.ack(delivery)
    settler.start()
    settler.stop()
    kinds = [kind for kind, _ in recorder.writes]
    assert kinds.index("store") < kinds.index("ack")


def test_a_steady_stream_is_written_in_fewer_larger_rounds() -> None:
    app = Celery("settle", broker="memory://")
    recorder = _Recorder(round_trip=0.0003)
    settler = Settler(recorder, recorder)  # type: ignore[arg-type]
    settler.start()
    deliveries = _deliveries(app, 400)
    for delivery in deliveries:  # about 10,000 acks a second: above the busy rate
        settler.ack(delivery)
        time.sleep(0.0001)
    settler.stop()
    acks = [n for kind, n in recorder.writes if kind == "ack"]
    assert sum(acks) == 400
    # Without gathering, a round is what piles up during one write (about 3 acks here).
    assert len(acks) < 70, acks


def test_pace_counts_as_busy_only_while_operations_keep_coming() -> None:
    pace: Any = settle._Pace()
    time.sleep(0.01)
    pace.round(1)  # one operation in 10 ms: idle
    assert not pace.busy()
    pace.round(1)  # single operations, however quick, are calls one at a time
    assert not pace.busy()
    pace.round(50)  # fifty at once: busy
    assert pace.busy()
    time.sleep(0.15)  # then a pause: the load has gone
    assert not pace.busy()


def test_no_gathering_where_acks_gate_delivery() -> None:
    # On AMQP the server delivers no more than the prefetch count of unacked messages: an
    # ack held back to gather a larger round would hold back the worker's next messages.
    gated = _Recorder()
    gated.acks_gate_delivery = True
    assert Settler(gated, None)._linger == 0  # type: ignore[arg-type]
    assert Settler(_Recorder(), None)._linger == settle.LINGER  # type: ignore[arg-type]
