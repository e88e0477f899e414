"""``app.connection()`` and friends, on the embedded SQLite broker and on a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.connection import Connection
from celeriac.exceptions import ImproperlyConfigured
from celeriac.message import Message
from tests.brokers.test_conformance_redis import delete_prefixed

REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    if request.param == "sqlite":
        app = Celery("conn", broker=f"sqlite:///{tmp_path / 'broker.db'}")
        yield app
        app.close()
        return
    prefix = f"conn-{uuid.uuid4().hex[:8]}:"
    app = Celery("conn", broker=REDIS_URL)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        yield app
    finally:
        app.close()
        delete_prefixed(REDIS_URL, prefix)


def test_queue_length_the_way_celery_users_ask_it(app: Celery) -> None:
    for n in range(5):
        app.send_task("conn.add", (n, n), queue="lengths")
    with app.connection_or_acquire() as conn:
        declared = conn.default_channel.queue_declare(queue="lengths", passive=True)
        assert declared.message_count == 5
        assert declared == ("lengths", 5, 0)
        assert conn.default_channel.queue_purge("lengths") == 5
    assert app.broker.size("lengths") == 0


def test_releasing_the_apps_connection_leaves_its_broker_open(app: Celery) -> None:
    with app.connection() as conn:
        assert conn.broker is app.broker
        assert conn.connect() is conn
    app.send_task("conn.add", (1, 1), queue="after")  # still usable
    assert app.broker.size("after") == 1


def test_a_connection_to_another_url_has_its_own_broker(tmp_path: Path) -> None:
    app = Celery("conn", broker=f"sqlite:///{tmp_path / 'one.db'}")
    other = f"sqlite:///{tmp_path / 'two.db'}"
    with app.connection_for_write(other) as conn:
        assert conn.broker is not app.broker
        assert conn.as_uri() == other
        conn.broker.publish("elsewhere", _message())
        assert conn.default_channel.queue_declare("elsewhere").message_count == 1
    assert app.broker.size("elsewhere") == 0
    app.close()


def test_connection_or_acquire_passes_a_given_connection_through(app: Celery) -> None:
    given = app.connection()
    with app.connection_or_acquire(given) as conn:
        assert conn is given


def test_separate_connection_arguments_are_refused_with_the_way_out(app: Celery) -> None:
    with pytest.raises(ImproperlyConfigured, match="in the URL"):
        app.connection(userid="guest", password="secret")
    assert isinstance(app.connection(userid=None), Connection)


def test_as_uri_masks_the_password() -> None:
    app = Celery("conn", broker="redis://:secret@127.0.0.1:6379/12")
    conn = app.connection()
    assert conn.as_uri() == "redis://:**@127.0.0.1:6379/12"
    assert conn.as_uri(include_password=True) == "redis://:secret@127.0.0.1:6379/12"


def _message() -> Message:
    headers = {"id": "x", "task": "conn.add"}
    return Message(b"[[], {}, {}]", headers, {}, "application/json", "utf-8")


def test_apply_async_publishes_on_the_connection_it_is_given(tmp_path: Path) -> None:
    app = Celery("conn", broker=f"sqlite:///{tmp_path / 'one.db'}")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with app.connection(f"sqlite:///{tmp_path / 'two.db'}") as other:
        add.apply_async((1, 2), connection=other)
        add.apply_async((1, 2), producer=other)
        assert other.default_channel.queue_declare("celery").message_count == 2
    with app.connection_or_acquire() as own:
        add.apply_async((1, 2), connection=own)
    assert app.broker.size("celery") == 1
    app.close()
