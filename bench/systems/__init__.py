"""One adapter per system under test; ``load(name)`` imports only the one asked for."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from systems.base import System

#: system name -> ("module:Class", virtual environment). Plain text, so that the orchestrator,
#: which runs outside the peers' virtual environments, can list systems without importing any.
ADAPTERS = {
    "celeriac-sqlite": ("systems.celeriac_sqlite:CeleriacSqlite", "peers"),
    "celeriac-sqlite-prefork": ("systems.celeriac_sqlite:CeleriacSqlitePrefork", "peers"),
    "celeriac-redis": ("systems.celeriac_redis:CeleriacRedis", "peers"),
    "celeriac-rabbitmq": ("systems.celeriac_rabbitmq:CeleriacRabbit", "peers"),
    "celery-redis-prefork": ("systems.celery_redis:CeleryRedisPrefork", "peers"),
    "celery-redis-threads": ("systems.celery_redis:CeleryRedisThreads", "peers"),
    "celery-rabbitmq-prefork": ("systems.celery_rabbitmq:CeleryRabbitPrefork", "peers"),
    "celery-rabbitmq-threads": ("systems.celery_rabbitmq:CeleryRabbitThreads", "peers"),
    "dramatiq-redis": ("systems.dramatiq_redis:DramatiqRedis", "peers"),
    "dramatiq-rabbitmq": ("systems.dramatiq_rabbitmq:DramatiqRabbit", "peers"),
    "rq-redis": ("systems.rq_redis:RqRedis", "peers"),
    "huey-redis": ("systems.huey_redis:HueyRedis", "peers"),
    "huey-sqlite": ("systems.huey_sqlite:HueySqlite", "peers"),
    "arq-redis": ("systems.arq_redis:ArqRedis", "arq"),
    "taskiq-redis": ("systems.taskiq_redis:TaskiqRedis", "peers"),
}


def load(name: str) -> type[System]:
    module_name, _, class_name = ADAPTERS[name][0].partition(":")
    cls: type[System] = getattr(importlib.import_module(module_name), class_name)
    return cls
