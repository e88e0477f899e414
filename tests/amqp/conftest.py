"""Fixtures of the RabbitMQ tests: one virtual host per module, deleted afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.amqp.rabbit import delete_vhost, new_vhost


@pytest.fixture(scope="module")
def vhost(request: pytest.FixtureRequest) -> Iterator[str]:
    name = new_vhost(request.module.__name__.rsplit(".", 1)[-1].replace("_", "-"))
    yield name
    delete_vhost(name)
