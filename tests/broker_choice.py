"""Run a process test on the embedded SQLite broker or on Redis, chosen by a fixture parameter.

A test project's app module reads two environment variables, so the workers, producers and
detached daemons a test starts (which all inherit the test's environment) share one broker:

    URL = os.environ.get("CELERIAC_TEST_BROKER")  # None: the embedded SQLite file
    app = Celery("tasks", broker=URL, backend=URL)
    if URL:
        options = {"global_keyprefix": os.environ["CELERIAC_TEST_PREFIX"]}
        app.conf.broker_transport_options = options
        app.conf.result_backend_transport_options = options

On Redis every test gets a key prefix of its own in the DB reserved for these tests, and its
keys are deleted afterwards, so tests never see each other's messages or results.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["BROKERS", "PREFIX_VAR", "REDIS_URL", "URL_VAR", "on_broker"]

#: The parameters a project fixture accepts (``indirect=True``); SQLite when none is given.
BROKERS = ["sqlite", "redis"]

#: Redis DB reserved for the pool and daemon process tests.
REDIS_URL = "redis://127.0.0.1:6379/8"

URL_VAR = "CELERIAC_TEST_BROKER"
PREFIX_VAR = "CELERIAC_TEST_PREFIX"


@contextmanager
def on_broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the test's processes at the broker ``request.param`` names; yields that name.

    Without a parameter it is SQLite (nothing is set: the app's default file). On Redis the
    environment names :data:`REDIS_URL` and a fresh prefix, whose keys are deleted when the
    block ends; the caller stops its processes inside the block, before that.
    """
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield kind
        return
    assert kind == "redis", kind
    prefix = f"t-{uuid.uuid4().hex[:10]}:"
    monkeypatch.setenv(URL_VAR, REDIS_URL)
    monkeypatch.setenv(PREFIX_VAR, prefix)
    try:
        yield kind
    finally:
        delete_prefix(prefix)


def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key under ``prefix`` in the Redis DB of ``url`` (bounded batches)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()
