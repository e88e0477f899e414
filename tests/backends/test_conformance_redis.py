"""The result-backend conformance suite on Redis (DB 12, a fresh key prefix per test).

Redis must be running on 127.0.0.1:6379 (or at ``CELERIAC_TEST_REDIS_URL``): a missing server
fails these tests, it never skips them. Each test deletes its own keys; nothing else in
DB 12 is touched, and DB 0 never is.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac import states
from celeriac.backends.base import ResultBackend
from celeriac.backends.redis import RedisBackend
from celeriac.testing.backend_suite import BackendConformance, BackendFactory

#: The test database: DB 12 is reserved for the Redis backend's tests.
REDIS_URL = os.environ.get("CELERIAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def redis_client() -> redis.Redis:
    """A raw client on the test database; fails loudly when Redis is not running."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not running at {REDIS_URL}: {exc}")
    return client


def delete_prefixed(client: redis.Redis, prefix: str) -> None:
    """Delete every key under ``prefix`` (a bounded SCAN)."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


class TestRedisBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self) -> Iterator[BackendFactory]:
        client = redis_client()
        prefix = f"celeriac-test-{uuid.uuid4().hex[:12]}:"
        made: list[ResultBackend] = []

        def make(**options: Any) -> ResultBackend:
            made.append(RedisBackend(REDIS_URL, options={"global_keyprefix": prefix}, **options))
            return made[-1]

        yield make
        for backend in made:
            backend.close()
        delete_prefixed(client, prefix)
        client.close()

    @pytest.fixture
    def backend(self, backend_factory: BackendFactory) -> ResultBackend:
        return backend_factory()

    # Redis expires keys by itself, so cleanup() finds nothing to delete (it returns 0);
    # these two replace the suite's versions, which expect cleanup() to count the expired.

    def test_expired_result_is_pending_and_cleaned_up(
        self, backend_factory: BackendFactory
    ) -> None:
        short = backend_factory(expires=0.2)
        forever = backend_factory(expires=None)
        task_id, kept_id = str(uuid.uuid4()), str(uuid.uuid4())
        short.store_result(task_id, "soon gone", states.SUCCESS)
        forever.store_result(kept_id, "kept", states.SUCCESS)
        assert short.get_task_meta(task_id)["status"] == "SUCCESS"
        time.sleep(0.4)
        assert short.get_task_meta(task_id)["status"] == "PENDING"
        assert short.cleanup() == 0
        assert isinstance(short, RedisBackend)
        assert redis_client().exists(short.task_key(task_id)) == 0  # gone, not just hidden
        assert forever.get_task_meta(kept_id)["result"] == "kept"

    def test_expired_group_is_gone(self, backend_factory: BackendFactory) -> None:
        short = backend_factory(expires=0.1)
        group_id = str(uuid.uuid4())
        short.save_group(group_id, [[group_id, None], []])
        time.sleep(0.25)
        assert short.restore_group(group_id) is None
        assert short.cleanup() == 0
        assert isinstance(short, RedisBackend)
        assert redis_client().exists(short.group_key(group_id)) == 0
