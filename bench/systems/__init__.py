"""One adapter per system under test; ``load(name)`` imports only the one asked for."""

from __future__ import annotations

import importlib

from systems.base import System

#: system name -> "module:Class". Kept here as text so the orchestrator, which runs outside the
#: peers' virtual environments, can list systems without importing any library.
ADAPTERS = {
    "celeriac-sqlite": "systems.celeriac_sqlite:CeleriacSqlite",
    "celery-redis-prefork": "systems.celery_redis:CeleryRedisPrefork",
    "celery-redis-threads": "systems.celery_redis:CeleryRedisThreads",
    "celery-rabbitmq-prefork": "systems.celery_rabbitmq:CeleryRabbitPrefork",
    "celery-rabbitmq-threads": "systems.celery_rabbitmq:CeleryRabbitThreads",
    "dramatiq-redis": "systems.dramatiq_redis:DramatiqRedis",
    "dramatiq-rabbitmq": "systems.dramatiq_rabbitmq:DramatiqRabbit",
    "rq-redis": "systems.rq_redis:RqRedis",
    "huey-redis": "systems.huey_redis:HueyRedis",
    "huey-sqlite": "systems.huey_sqlite:HueySqlite",
    "arq-redis": "systems.arq_redis:ArqRedis",
    "taskiq-redis": "systems.taskiq_redis:TaskiqRedis",
}


def load(name: str) -> type[System]:
    module_name, _, class_name = ADAPTERS[name].partition(":")
    cls: type[System] = getattr(importlib.import_module(module_name), class_name)
    return cls
