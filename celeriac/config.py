"""Every setting celeriac knows, and the layered settings object behind ``app.conf``.

The room holds three things:

* ``SETTINGS``, the declarative table: every setting name Celery 5 accepts (the ones in
  Celery's own defaults table, the ones its documentation adds, and two celeriac-only
  settings), each with Celery's default, a type tag for light checking, a one-line doc and
  the legacy upper-case names (``CELERYD_PREFETCH_MULTIPLIER``) that map to it.
* :class:`Settings`, the mapping behind ``app.conf``: explicit changes over the defaults,
  attribute and item access, unknown names refused with the closest valid name, values
  checked against the table, secrets masked by :meth:`Settings.humanize`.
* The loaders the app uses: :func:`load_object_settings` reads the settings a module, class,
  object or dict defines (optionally under a Django-style namespace such as ``CELERY``) and
  :func:`resolve_config_source` turns ``'module:attr'`` strings into that object.

Where celeriac's defaults differ from Celery's, the row's doc says so (``broker_url``,
``result_backend``), and the celeriac-only rows say "celeriac only".
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType, ModuleType
from typing import Any, Literal

from celeriac.exceptions import ImproperlyConfigured, UnknownSettingError
from celeriac.utils.imports import symbol_by_name

__all__ = [
    "DEFAULTS",
    "ENV_VARS",
    "EXTENSION_PREFIXES",
    "OLD_NAMES",
    "SETTINGS",
    "SETTINGS_BY_NAME",
    "Setting",
    "SettingType",
    "Settings",
    "canonical_name",
    "closest_settings",
    "load_object_settings",
    "mask_url_passwords",
    "resolve_config_source",
]

#: The type tags of the table. ``seconds`` is a number of seconds or a ``timedelta``;
#: ``list`` also takes a comma-separated string; ``any`` is not checked.
SettingType = Literal["any", "bool", "int", "float", "seconds", "str", "list", "dict"]


@dataclass(frozen=True)
class Setting:
    """One row of the settings table.

    Attributes:
        name: The lower-case name (Celery 4+ style).
        default: Celery's default (celeriac's where the doc says so). Sequences are tuples
            and mappings read-only, so a default can never be changed through one app.
        type: Type tag used to check and coerce values on write; None is always accepted.
        doc: What the setting does, in one line.
        old: Legacy upper-case names (Celery 3 style) accepted for this setting.
    """

    name: str
    default: Any
    type: SettingType
    doc: str
    old: tuple[str, ...] = ()


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    """A read-only mapping default; each :class:`Settings` reads its own mutable copy."""
    return MappingProxyType(mapping)


_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
_TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)
_PUBLISH_RETRY_POLICY = _frozen(
    {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 1}
)
_DATABASE_ENGINE_OPTIONS = _frozen({"pool_pre_ping": True, "pool_recycle": 3600})

# One row per setting, grouped by topic in the order of Celery's feature checklist. The table is
# kept out of the formatter so each row stays two or three readable lines.
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    # -- General (Celery's top-level settings) ----------------------------------------------
    Setting("accept_content", ("json",), "list", old=("CELERY_ACCEPT_CONTENT",),
            doc="Content types (or serializer names) a consumer will decode; any other is "
                "rejected."),
    Setting("result_accept_content", None, "list", old=("CELERY_RESULT_ACCEPT_CONTENT",),
            doc="Content types allowed when decoding stored results; None: use accept_content."),
    Setting("enable_utc", True, "bool", old=("CELERY_ENABLE_UTC",),
            doc="Express the times inside messages in UTC."),
    Setting("timezone", "UTC", "any", old=("CELERY_TIMEZONE",),
            doc="Zone name (or tzinfo) for crontab schedules and app.now()."),
    Setting("imports", (), "list", old=("CELERY_IMPORTS",),
            doc="Modules a worker imports at start-up so their tasks are registered."),
    Setting("include", (), "list", old=("CELERY_INCLUDE",),
            doc="More modules to import at start-up, kept apart from imports."),

    # -- Tasks ------------------------------------------------------------------------------
    Setting("task_annotations", None, "any", old=("CELERY_ANNOTATIONS",),
            doc="Task attributes overridden from configuration: dict by task name ('*' for all) "
                "or objects."),
    Setting("task_serializer", "json", "str", old=("CELERY_TASK_SERIALIZER",),
            doc="Serializer for task messages (json, pickle, msgpack, yaml or a registered one)."),
    Setting("task_compression", None, "str", old=("CELERY_MESSAGE_COMPRESSION",),
            doc="Compression for task messages (gzip, bzip2, lzma, zstd, ...); None: none."),
    Setting("task_protocol", 2, "int", old=("CELERY_TASK_PROTOCOL",),
            doc="Version of the task message protocol used when sending (1 or 2)."),
    Setting("task_ignore_result", False, "bool", old=("CELERY_IGNORE_RESULT",),
            doc="Do not store task return values unless a task asks for it."),
    Setting("task_store_errors_even_if_ignored", False, "bool",
            old=("CELERY_STORE_ERRORS_EVEN_IF_IGNORED",),
            doc="Store failures even for tasks that ignore their results."),
    Setting("task_track_started", False, "bool", old=("CELERY_TRACK_STARTED",),
            doc="Record a STARTED state when a worker begins a task."),
    Setting("task_acks_late", False, "bool", old=("CELERY_ACKS_LATE",),
            doc="Acknowledge a message after its task has run rather than just before."),
    Setting("task_acks_on_failure_or_timeout", True, "bool",
            old=("CELERY_ACKS_ON_FAILURE_OR_TIMEOUT",),
            doc="With late acks, still acknowledge messages whose task failed or timed out."),
    Setting("task_acks_on_failure", None, "bool", old=("CELERY_ACKS_ON_FAILURE",),
            doc="With late acks: ack failed tasks (True) or reject them (False); None: follow "
                "task_acks_on_failure_or_timeout."),
    Setting("task_acks_on_timeout", None, "bool", old=("CELERY_ACKS_ON_TIMEOUT",),
            doc="With late acks: ack timed-out tasks (True) or requeue them (False); None: follow"
                " task_acks_on_failure_or_timeout."),
    Setting("task_reject_on_worker_lost", None, "bool",
            old=("CELERY_REJECT_ON_WORKER_LOST", "CELERY_TASK_REJECT_ON_WORKER_LOST"),
            doc="With late acks, requeue the message when the process running its task dies."),
    Setting("task_remote_tracebacks", False, "bool", old=("CELERY_REMOTE_TRACEBACKS",),
            doc="Show the worker's traceback when a task error is re-raised in the caller."),
    Setting("task_send_sent_event", False, "bool",
            old=("CELERY_SEND_TASK_SENT_EVENT", "CELERY_SEND_SENT_EVENT"),
            doc="The sender emits a task-sent event for every message it publishes."),

    # -- Publishing and eager mode ----------------------------------------------------------
    Setting("task_publish_retry", True, "bool",
            old=("CELERY_TASK_PUBLISH_RETRY", "CELERY_PUBLISH_RETRY"),
            doc="Retry publishing a task message when the broker connection fails."),
    Setting("task_publish_retry_policy", _PUBLISH_RETRY_POLICY, "dict",
            old=("CELERY_TASK_PUBLISH_RETRY_POLICY", "CELERY_PUBLISH_RETRY_POLICY"),
            doc="Back-off of publish retries: max_retries, interval_start, interval_step, "
                "interval_max."),
    Setting("task_always_eager", False, "bool", old=("CELERY_ALWAYS_EAGER",),
            doc="Run tasks in the caller, synchronously, instead of sending them (for tests)."),
    Setting("task_eager_propagates", False, "bool",
            old=("CELERY_EAGER_PROPAGATES_EXCEPTIONS", "CELERY_EAGER_PROPAGATES"),
            doc="In eager mode, re-raise a task's exception in the caller."),
    Setting("task_store_eager_result", False, "bool", old=("CELERY_STORE_EAGER_RESULT",),
            doc="In eager mode, also write results to the result backend."),

    # -- Results ----------------------------------------------------------------------------
    Setting("result_backend", None, "any", old=("CELERY_RESULT_BACKEND",),
            doc="Result store URL. None: the embedded SQLite backend when no broker URL is given;"
                " otherwise disabled (celeriac). Env CELERY_RESULT_BACKEND is used when not set."),
    Setting("result_serializer", "json", "str", old=("CELERY_RESULT_SERIALIZER",),
            doc="Serializer for stored results."),
    Setting("result_compression", None, "str", old=("CELERY_RESULT_COMPRESSION",),
            doc="Compression for stored results; None: none."),
    Setting("result_extended", False, "bool", old=("CELERY_RESULT_EXTENDED",),
            doc="Also store task name, args, kwargs, worker, retries and queue with a result."),
    Setting("result_expires", timedelta(days=1), "seconds",
            old=("CELERY_TASK_RESULT_EXPIRES", "CELERY_RESULT_EXPIRES"),
            doc="How long stored results live; None or 0: forever."),
    Setting("result_cache_max", -1, "int", old=("CELERY_MAX_CACHED_RESULTS",),
            doc="Size of the client-side cache of fetched results; -1: no cache."),
    Setting("result_persistent", None, "bool", old=("CELERY_RESULT_PERSISTENT",),
            doc="rpc backend: publish result messages as persistent."),
    Setting("result_chord_join_timeout", 3.0, "seconds", old=("CELERY_RESULT_CHORD_JOIN_TIMEOUT",),
            doc="Timeout when a chord joins the results of its header."),
    Setting("result_chord_retry_interval", 1.0, "seconds",
            old=("CELERY_RESULT_CHORD_RETRY_INTERVAL",),
            doc="Interval between retries of the chord-unlock polling task."),
    Setting("result_backend_always_retry", False, "bool",
            old=("CELERY_RESULT_BACKEND_ALWAYS_RETRY",),
            doc="Retry recoverable result-backend errors automatically."),
    Setting("result_backend_max_retries", math.inf, "float",
            old=("CELERY_RESULT_BACKEND_MAX_RETRIES",),
            doc="Most retries of a failing result-backend call before giving up."),
    Setting("result_backend_base_sleep_between_retries_ms", 10, "int",
            old=("CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS",),
            doc="Base (ms) of the exponential back-off between backend retries."),
    Setting("result_backend_max_sleep_between_retries_ms", 10000, "int",
            old=("CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS",),
            doc="Longest sleep (ms) between backend retries."),
    Setting("result_backend_thread_safe", False, "bool",
            doc="Share one backend object (and its connections) between threads."),
    Setting("result_backend_transport_options", _frozen({}), "dict",
            old=("CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",),
            doc="Backend-specific options (global_keyprefix, retry_policy, visibility_timeout, "
                "...)."),
    Setting("result_exchange", "celeryresults", "str", old=("CELERY_RESULT_EXCHANGE",),
            doc="Legacy: exchange of the old amqp result backend."),
    Setting("result_exchange_type", "direct", "str", old=("CELERY_RESULT_EXCHANGE_TYPE",),
            doc="Legacy: type of that exchange."),
    Setting("override_backends", None, "dict",
            doc="Extra result-backend aliases: name -> 'module:Class'."),

    # -- Broker -----------------------------------------------------------------------------
    Setting("broker_url", None, "any", old=("BROKER_URL",),
            doc="Broker URL, or a list / ';'-separated URLs for failover. None: the embedded "
                "SQLite broker (celeriac). Env CELERY_BROKER_URL is used when not set."),
    Setting("broker_read_url", None, "any", old=("BROKER_READ_URL",),
            doc="URL for consuming connections; None: broker_url. Env CELERY_BROKER_READ_URL is "
                "used when not set."),
    Setting("broker_write_url", None, "any", old=("BROKER_WRITE_URL",),
            doc="URL for publishing connections; None: broker_url. Env CELERY_BROKER_WRITE_URL is"
                " used when not set."),
    Setting("broker_transport", None, "any", old=("BROKER_TRANSPORT",),
            doc="Legacy: transport name or class, used when the URL has no scheme."),
    Setting("broker_transport_options", _frozen({}), "dict", old=("BROKER_TRANSPORT_OPTIONS",),
            doc="Transport-specific options (visibility_timeout, global_keyprefix, ...)."),
    Setting("broker_connection_timeout", 4.0, "seconds", old=("BROKER_CONNECTION_TIMEOUT",),
            doc="Seconds to wait while establishing a broker connection."),
    Setting("broker_connection_retry", True, "bool", old=("BROKER_CONNECTION_RETRY",),
            doc="Re-establish a lost broker connection automatically."),
    Setting("broker_connection_retry_on_startup", None, "bool",
            old=("BROKER_CONNECTION_RETRY_ON_STARTUP",),
            doc="Retry the first connection at worker start; None: follow "
                "broker_connection_retry."),
    Setting("broker_connection_max_retries", 100, "int", old=("BROKER_CONNECTION_MAX_RETRIES",),
            doc="Most reconnection attempts before giving up; 0 or None: forever."),
    Setting("broker_channel_error_retry", False, "bool", old=("BROKER_CHANNEL_ERROR_RETRY",),
            doc="Also retry after channel errors, not only connection errors."),
    Setting("broker_failover_strategy", "round-robin", "any", old=("BROKER_FAILOVER_STRATEGY",),
            doc="How the next failover URL is picked: round-robin, shuffle or a callable."),
    Setting("broker_heartbeat", 120, "seconds", old=("BROKER_HEARTBEAT",),
            doc="AMQP heartbeat interval negotiated by the worker; 0: off."),
    Setting("broker_heartbeat_checkrate", 2.0, "float", old=("BROKER_HEARTBEAT_CHECKRATE",),
            doc="How many times per heartbeat interval the worker checks heartbeats."),
    Setting("broker_login_method", "AMQPLAIN", "str", old=("BROKER_LOGIN_METHOD",),
            doc="AMQP SASL login method."),
    Setting("broker_native_delayed_delivery_queue_type", "quorum", "str",
            old=("BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE",),
            doc="RabbitMQ queue type of the native delayed-delivery queues (quorum or classic)."),
    Setting("broker_pool_limit", 10, "int", old=("BROKER_POOL_LIMIT",),
            doc="Most connections in the publishing connection pool; None or 0: no pool."),
    Setting("broker_pool_acquire_timeout", None, "seconds", old=("BROKER_POOL_ACQUIRE_TIMEOUT",),
            doc="Longest wait for a pooled connection when sending; None: block."),
    Setting("broker_use_ssl", False, "any", old=("BROKER_USE_SSL",),
            doc="TLS for the broker connection: True or a dict of ssl options."),
    Setting("broker_host", None, "str", old=("BROKER_HOST",),
            doc="Legacy: broker host, used when broker_url is not set."),
    Setting("broker_port", None, "int", old=("BROKER_PORT",), doc="Legacy: broker port."),
    Setting("broker_user", None, "str", old=("BROKER_USER",), doc="Legacy: broker user name."),
    Setting("broker_password", None, "str", old=("BROKER_PASSWORD",),
            doc="Legacy: broker password."),
    Setting("broker_vhost", None, "str", old=("BROKER_VHOST",), doc="Legacy: broker virtual host."),

    # -- Database result backend ------------------------------------------------------------
    Setting("database_url", None, "str", old=("SQLALCHEMY_DBURI", "CELERY_RESULT_DBURI"),
            doc="Legacy: SQLAlchemy URL of the database backend (prefer result_backend='db+...')."),
    Setting("database_create_tables_at_setup", True, "bool",
            doc="Create the result tables when the backend starts (False: on first use)."),
    Setting("database_engine_options", _DATABASE_ENGINE_OPTIONS, "dict",
            old=("SQLALCHEMY_ENGINE_OPTIONS", "CELERY_RESULT_ENGINE_OPTIONS"),
            doc="Extra keyword arguments for SQLAlchemy's create_engine()."),
    Setting("database_engine_callback", None, "any",
            doc="Callable (or its import path) called with the engine right after it is created."),
    Setting("database_short_lived_sessions", False, "bool",
            old=("SQLALCHEMY_SHORT_LIVED_SESSIONS", "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS"),
            doc="Open a new database session for each operation."),
    Setting("database_table_schemas", _frozen({}), "dict", old=("SQLALCHEMY_TABLE_SCHEMAS",),
            doc="Schema of each result table: {'task': ..., 'group': ...}."),
    Setting("database_table_names", _frozen({}), "dict",
            old=("SQLALCHEMY_TABLE_NAMES", "CELERY_RESULT_DB_TABLENAMES"),
            doc="Name of each result table (defaults celery_taskmeta, celery_tasksetmeta)."),

    # -- Redis result backend ---------------------------------------------------------------
    Setting("redis_backend_health_check_interval", None, "seconds",
            doc="Seconds between health checks of result-backend connections."),
    Setting("redis_backend_use_ssl", None, "any", old=("CELERY_REDIS_BACKEND_USE_SSL",),
            doc="TLS options (a dict) for the Redis result backend."),
    Setting("redis_backend_credential_provider", None, "any",
            doc="redis-py credential provider (instance or import path) for the backend."),
    Setting("redis_max_connections", None, "int", old=("CELERY_REDIS_MAX_CONNECTIONS",),
            doc="Most connections in the result backend's pool."),
    Setting("redis_socket_connect_timeout", None, "seconds",
            old=("CELERY_REDIS_SOCKET_CONNECT_TIMEOUT",),
            doc="Connect timeout of result-backend connections."),
    Setting("redis_socket_timeout", 120.0, "seconds", old=("CELERY_REDIS_SOCKET_TIMEOUT",),
            doc="Read and write timeout of result-backend connections."),
    Setting("redis_retry_on_timeout", False, "bool", old=("CELERY_REDIS_RETRY_ON_TIMEOUT",),
            doc="Retry a Redis command once after a timeout."),
    Setting("redis_socket_keepalive", False, "bool", old=("CELERY_REDIS_SOCKET_KEEPALIVE",),
            doc="TCP keep-alive on result-backend connections."),
    Setting("redis_client_name", None, "str",
            doc="Name given to result-backend connections (CLIENT SETNAME)."),
    Setting("redis_username", None, "str", old=("CELERY_REDIS_USERNAME",),
            doc="Legacy: result-backend user name."),
    Setting("redis_password", None, "str", old=("CELERY_REDIS_PASSWORD",),
            doc="Legacy: result-backend password."),
    Setting("redis_host", None, "str", old=("CELERY_REDIS_HOST",),
            doc="Legacy: result-backend host."),
    Setting("redis_port", None, "int", old=("CELERY_REDIS_PORT",),
            doc="Legacy: result-backend port."),
    Setting("redis_db", None, "int", old=("CELERY_REDIS_DB",),
            doc="Legacy: result-backend database number."),

    # -- Other result backends (accepted so Celery configs load; read by their backends only) ---
    Setting("cache_backend", None, "any", old=("CELERY_CACHE_BACKEND",),
            doc="Cache backend name or URL when result_backend does not give one."),
    Setting("cache_backend_options", _frozen({}), "dict", old=("CELERY_CACHE_BACKEND_OPTIONS",),
            doc="Options for the memcached client."),
    Setting("mongodb_backend_settings", None, "dict", old=("CELERY_MONGODB_BACKEND_SETTINGS",),
            doc="MongoDB backend: database, collections, pool size and options."),
    Setting("cassandra_servers", (), "list", old=("CASSANDRA_SERVERS",),
            doc="Cassandra contact points."),
    Setting("cassandra_secure_bundle_path", None, "any",
            doc="Astra DB secure-connect bundle (instead of cassandra_servers)."),
    Setting("cassandra_bundle_path", None, "any",
            doc="Older spelling of cassandra_secure_bundle_path."),
    Setting("cassandra_port", 9042, "int", old=("CASSANDRA_PORT",), doc="Cassandra port."),
    Setting("cassandra_keyspace", None, "str", old=("CASSANDRA_KEYSPACE",),
            doc="Keyspace that holds the results."),
    Setting("cassandra_table", None, "str", old=("CASSANDRA_TABLE", "CASSANDRA_COLUMN_FAMILY"),
            doc="Table that holds the results."),
    Setting("cassandra_read_consistency", None, "str", old=("CASSANDRA_READ_CONSISTENCY",),
            doc="Read consistency level (ONE, QUORUM, LOCAL_QUORUM, ...)."),
    Setting("cassandra_write_consistency", None, "str", old=("CASSANDRA_WRITE_CONSISTENCY",),
            doc="Write consistency level."),
    Setting("cassandra_entry_ttl", None, "seconds", old=("CASSANDRA_ENTRY_TTL",),
            doc="Time to live of result rows."),
    Setting("cassandra_auth_provider", None, "any", old=("CASSANDRA_AUTH_PROVIDER",),
            doc="Authentication provider class name."),
    Setting("cassandra_auth_kwargs", _frozen({}), "dict", old=("CASSANDRA_AUTH_KWARGS",),
            doc="Keyword arguments for the authentication provider."),
    Setting("cassandra_options", _frozen({}), "dict", old=("CASSANDRA_OPTIONS",),
            doc="Keyword arguments for the Cassandra cluster."),
    Setting("s3_access_key_id", None, "str", doc="S3 access key id."),
    Setting("s3_secret_access_key", None, "str", doc="S3 secret access key."),
    Setting("s3_bucket", None, "str", doc="S3 bucket that holds the results."),
    Setting("s3_base_path", None, "str", doc="Key prefix inside the bucket."),
    Setting("s3_endpoint_url", None, "str",
            doc="Endpoint of an S3-compatible store (MinIO, Ceph, ...)."),
    Setting("s3_region", None, "str", doc="AWS region."),
    Setting("azureblockblob_container_name", "celery", "str",
            doc="Azure container that holds the results."),
    Setting("azureblockblob_base_path", "", "str", doc="Blob name prefix."),
    Setting("azureblockblob_retry_initial_backoff_sec", 2, "seconds", doc="First retry back-off."),
    Setting("azureblockblob_retry_increment_base", 2, "float",
            doc="Base of the exponential retry back-off."),
    Setting("azureblockblob_retry_max_attempts", 3, "int", doc="Most retry attempts."),
    Setting("azureblockblob_connection_timeout", 20, "seconds", doc="Connection timeout."),
    Setting("azureblockblob_read_timeout", 120, "seconds", doc="Read timeout."),
    Setting("gcs_bucket", None, "str", doc="Google Cloud Storage bucket that holds the results."),
    Setting("gcs_project", None, "str", doc="Google Cloud project."),
    Setting("gcs_base_path", "", "str", doc="Object name prefix."),
    Setting("gcs_ttl", 0, "seconds", doc="Lifetime of result objects; 0: forever."),
    Setting("elasticsearch_retry_on_timeout", False, "bool",
            old=("CELERY_ELASTICSEARCH_RETRY_ON_TIMEOUT",),
            doc="Retry on another node after a timeout."),
    Setting("elasticsearch_max_retries", 3, "int", old=("CELERY_ELASTICSEARCH_MAX_RETRIES",),
            doc="Most retries before an error is raised."),
    Setting("elasticsearch_timeout", 10.0, "seconds", old=("CELERY_ELASTICSEARCH_TIMEOUT",),
            doc="Request timeout."),
    Setting("elasticsearch_save_meta_as_text", True, "bool",
            old=("CELERY_ELASTICSEARCH_SAVE_META_AS_TEXT",),
            doc="Store result metadata as text rather than as a JSON object."),
    Setting("couchbase_backend_settings", None, "dict", old=("CELERY_COUCHBASE_BACKEND_SETTINGS",),
            doc="Couchbase backend: host, port, bucket, username, password."),
    Setting("arangodb_backend_settings", None, "dict", old=("CELERY_ARANGODB_BACKEND_SETTINGS",),
            doc="ArangoDB backend: host, port, database, collection, credentials, ..."),
    Setting("cosmosdbsql_database_name", "celerydb", "str", doc="Cosmos DB database."),
    Setting("cosmosdbsql_collection_name", "celerycol", "str", doc="Cosmos DB collection."),
    Setting("cosmosdbsql_consistency_level", "Session", "str", doc="Cosmos DB consistency level."),
    Setting("cosmosdbsql_max_retry_attempts", 9, "int", doc="Most retry attempts."),
    Setting("cosmosdbsql_max_retry_wait_time", 30, "seconds",
            doc="Longest total wait across retries."),

    # -- Message signing --------------------------------------------------------------------
    Setting("security_key", None, "any", old=("CELERY_SECURITY_KEY",),
            doc="Private key file used to sign messages."),
    Setting("security_key_password", None, "any", old=("CELERY_SECURITY_KEY_PASSWORD",),
            doc="Password of that private key (str or bytes)."),
    Setting("security_certificate", None, "any", old=("CELERY_SECURITY_CERTIFICATE",),
            doc="X.509 certificate file used to sign messages."),
    Setting("security_cert_store", None, "any", old=("CELERY_SECURITY_CERT_STORE",),
            doc="Directory or glob of trusted certificates."),
    Setting("security_digest", "sha256", "str", old=("CELERY_SECURITY_DIGEST",),
            doc="Digest used for signatures."),

    # -- Worker -----------------------------------------------------------------------------
    Setting("worker_concurrency", None, "int", old=("CELERYD_CONCURRENCY",),
            doc="Number of pool processes, threads or greenlets; None: the CPU count."),
    Setting("worker_pool", "prefork", "any", old=("CELERYD_POOL",),
            doc="Pool: prefork, threads, solo, gevent, eventlet, processes (alias) or a class."),
    Setting("worker_prefetch_multiplier", 4, "int", old=("CELERYD_PREFETCH_MULTIPLIER",),
            doc="Messages reserved per pool slot (concurrency x multiplier); 0: no limit."),
    Setting("worker_disable_prefetch", False, "bool",
            doc="Fetch a message only when a pool slot is free."),
    Setting("worker_enable_prefetch_count_reduction", True, "bool",
            old=("CELERYD_ENABLE_PREFETCH_COUNT_REDUCTION",),
            doc="After a reconnect, raise the prefetch count back gradually as tasks finish."),
    Setting("worker_eta_task_limit", None, "int", old=("CELERYD_ETA_TASK_LIMIT",),
            doc="Most ETA/countdown tasks held in memory; fetching pauses at the limit."),
    Setting("worker_timer_precision", 1.0, "seconds",
            old=("CELERYD_TIMER_PRECISION", "CELERYD_ETA_SCHEDULER_PRECISION"),
            doc="Longest sleep of the ETA timer between checks."),
    Setting("worker_max_tasks_per_child", None, "int", old=("CELERYD_MAX_TASKS_PER_CHILD",),
            doc="Replace a pool process after it has run this many tasks."),
    Setting("worker_max_memory_per_child", None, "int", old=("CELERYD_MAX_MEMORY_PER_CHILD",),
            doc="Replace a pool process once its resident memory exceeds this many KiB."),
    Setting("worker_lost_wait", 10.0, "seconds", old=("CELERYD_WORKER_LOST_WAIT",),
            doc="How long to wait for the result of a lost pool process before WorkerLostError."),
    Setting("worker_proc_alive_timeout", 4.0, "seconds", old=("CELERYD_PROC_ALIVE_TIMEOUT",),
            doc="How long a new pool process may take to start."),
    Setting("worker_state_db", None, "any", old=("CELERYD_STATE_DB",),
            doc="File that keeps worker state (revoked ids) across restarts."),
    Setting("worker_disable_rate_limits", False, "bool", old=("CELERY_DISABLE_RATE_LIMITS",),
            doc="Ignore every task rate limit."),
    Setting("worker_enable_remote_control", True, "bool", old=("CELERY_ENABLE_REMOTE_CONTROL",),
            doc="Listen for remote-control commands."),
    Setting("worker_pool_restarts", False, "bool", old=("CELERYD_POOL_RESTARTS",),
            doc="Allow the pool_restart remote-control command."),
    Setting("worker_pool_putlocks", True, "bool", old=("CELERYD_POOL_PUTLOCKS",),
            doc="Block when no pool slot is free instead of queueing in memory."),
    Setting("worker_autoscaler", "celery.worker.autoscale:Autoscaler", "any",
            old=("CELERYD_AUTOSCALER",),
            doc="Autoscaler class (Celery's default path; celeriac uses its own unless changed)."),
    Setting("worker_consumer", "celery.worker.consumer:Consumer", "any", old=("CELERYD_CONSUMER",),
            doc="Consumer class (Celery's default path; celeriac uses its own unless changed)."),
    Setting("worker_timer", None, "any", old=("CELERYD_TIMER", "CELERYD_ETA_SCHEDULER"),
            doc="ETA timer class; None: the pool's own."),
    Setting("worker_agent", None, "any", old=("CELERYD_AGENT",),
            doc="Legacy: agent class started with the worker."),
    Setting("worker_cancel_long_running_tasks_on_connection_loss", False, "bool",
            doc="When the broker connection is lost, cancel running late-ack tasks (they are "
                "redelivered)."),
    Setting("worker_detect_quorum_queues", True, "bool",
            doc="Notice quorum queues and turn off global QoS for them."),
    Setting("worker_soft_shutdown_timeout", 0.0, "seconds",
            doc="Seconds of soft shutdown (tasks may finish) before a cold one; 0: off."),
    Setting("worker_enable_soft_shutdown_on_idle", False, "bool",
            doc="Do the soft shutdown even when no task runs (so ETA tasks are requeued)."),
    Setting("worker_deduplicate_successful_tasks", False, "bool",
            doc="Skip a redelivered late-ack task whose id already succeeded."),
    Setting("worker_send_task_events", False, "bool", old=("CELERY_SEND_EVENTS",),
            doc="Send task events (as worker -E does)."),
    Setting("worker_hijack_root_logger", True, "bool", old=("CELERYD_HIJACK_ROOT_LOGGER",),
            doc="Replace the root logger's handlers with the worker's."),
    Setting("worker_log_color", None, "bool", old=("CELERYD_LOG_COLOR",),
            doc="Colour log output; None: when writing to a terminal."),
    Setting("worker_log_format", _LOG_FORMAT, "str", old=("CELERYD_LOG_FORMAT",),
            doc="Format of the worker's own log records."),
    Setting("worker_task_log_format", _TASK_LOG_FORMAT, "str", old=("CELERYD_TASK_LOG_FORMAT",),
            doc="Format of log records written by tasks."),
    Setting("worker_redirect_stdouts", True, "bool",
            old=("CELERY_REDIRECT_STDOUTS", "CELERYD_REDIRECT_STDOUTS"),
            doc="Send print() output and stray writes to stdout/stderr to the log."),
    Setting("worker_redirect_stdouts_level", "WARNING", "str",
            old=("CELERY_REDIRECT_STDOUTS_LEVEL", "CELERYD_REDIRECT_STDOUTS_LEVEL"),
            doc="Log level of that redirected output."),
    Setting("worker_dead_letter", True, "bool",
            doc="celeriac only: keep messages that cannot be run in the dead-letter store instead"
                " of dropping them."),

    # -- Time limits and rate limits --------------------------------------------------------
    Setting("task_time_limit", None, "seconds", old=("CELERYD_TASK_TIME_LIMIT",),
            doc="Hard time limit: the process running the task is killed and replaced."),
    Setting("task_soft_time_limit", None, "seconds", old=("CELERYD_TASK_SOFT_TIME_LIMIT",),
            doc="Soft time limit: SoftTimeLimitExceeded is raised inside the task."),
    Setting("task_default_rate_limit", None, "any", old=("CELERY_DEFAULT_RATE_LIMIT",),
            doc="Per-worker rate limit for every task ('10/s', '100/m', '1000/h'); None: none."),
    Setting("task_allow_error_cb_on_chord_header", False, "bool",
            doc="Attach a chord's error callback to each header task too."),

    # -- Routing and queues -----------------------------------------------------------------
    Setting("task_queues", None, "any", old=("CELERY_QUEUES",),
            doc="Queues the app declares and workers consume (list or dict); None: just the "
                "default."),
    Setting("task_routes", None, "any", old=("CELERY_ROUTES",),
            doc="Routers (dicts by name, glob or regex, functions, import paths), tried in order."),
    Setting("task_default_queue", "celery", "str", old=("CELERY_DEFAULT_QUEUE",),
            doc="Queue for tasks without a route."),
    Setting("task_default_queue_type", "classic", "str",
            doc="RabbitMQ type of the default queue (classic or quorum)."),
    Setting("task_default_exchange", None, "str", old=("CELERY_DEFAULT_EXCHANGE",),
            doc="Exchange for queues that name none; None: the default queue's name."),
    Setting("task_default_exchange_type", "direct", "str", old=("CELERY_DEFAULT_EXCHANGE_TYPE",),
            doc="Type of the default exchange."),
    Setting("task_default_routing_key", None, "str", old=("CELERY_DEFAULT_ROUTING_KEY",),
            doc="Routing key for queues that name none; None: the default queue's name."),
    Setting("task_default_delivery_mode", 2, "any", old=("CELERY_DEFAULT_DELIVERY_MODE",),
            doc="Delivery mode of task messages: 2 or 'persistent', 1 or 'transient'."),
    Setting("task_create_missing_queues", True, "bool", old=("CELERY_CREATE_MISSING_QUEUES",),
            doc="Declare queues that routes name but task_queues does not."),
    Setting("task_create_missing_queue_type", "classic", "str",
            doc="RabbitMQ type (classic or quorum) of such queues."),
    Setting("task_create_missing_queue_exchange_type", None, "str",
            doc="Exchange type of such queues; None: a direct exchange."),
    Setting("task_queue_max_priority", None, "int", old=("CELERY_QUEUE_MAX_PRIORITY",),
            doc="x-max-priority given to declared queues; None: no priorities."),
    Setting("task_default_priority", None, "int", old=("CELERY_DEFAULT_PRIORITY",),
            doc="Priority of tasks that do not give one."),
    Setting("task_inherit_parent_priority", False, "bool", old=("CELERY_INHERIT_PARENT_PRIORITY",),
            doc="Tasks sent from a running task inherit its priority."),
    Setting("worker_direct", False, "bool", old=("CELERY_WORKER_DIRECT",),
            doc="Give each worker its own queue, <hostname>.dq2."),

    # -- Periodic tasks (beat) --------------------------------------------------------------
    Setting("beat_schedule", _frozen({}), "dict", old=("CELERYBEAT_SCHEDULE",),
            doc="Periodic entries: name -> {task, schedule, args, kwargs, options, relative}."),
    Setting("beat_scheduler", "celery.beat:PersistentScheduler", "any",
            old=("CELERYBEAT_SCHEDULER",),
            doc="Scheduler class or import path (Celery's default path maps to celeriac's file "
                "scheduler)."),
    Setting("beat_schedule_filename", "celerybeat-schedule", "any",
            old=("CELERYBEAT_SCHEDULE_FILENAME",),
            doc="File that keeps the last run times of the default scheduler."),
    Setting("beat_sync_every", 0, "int", old=("CELERYBEAT_SYNC_EVERY",),
            doc="Save the schedule after this many sent tasks; 0: on a timer."),
    Setting("beat_max_loop_interval", 0, "seconds", old=("CELERYBEAT_MAX_LOOP_INTERVAL",),
            doc="Longest sleep between schedule checks; 0: the scheduler's own (300 s)."),
    Setting("beat_cron_starting_deadline", None, "seconds",
            doc="How late a missed crontab run may still be sent; None: always."),

    # -- Remote control ---------------------------------------------------------------------
    Setting("control_exchange", "celery", "str",
            doc="Name of the remote-control mailbox (<name>.pidbox, reply.<name>.pidbox)."),
    Setting("control_queue_ttl", 300.0, "seconds",
            doc="Message time to live in remote-control and reply queues."),
    Setting("control_queue_expires", 10.0, "seconds",
            doc="How long an unused remote-control or reply queue lives."),
    Setting("control_queue_durable", False, "bool",
            doc="Make remote-control queues durable (not with exclusive)."),
    Setting("control_queue_exclusive", True, "bool", doc="Make remote-control queues exclusive."),

    # -- Events -----------------------------------------------------------------------------
    Setting("event_exchange", "celeryev", "str", old=("CELERY_EVENT_EXCHANGE",),
            doc="Exchange events are published to."),
    Setting("event_serializer", "json", "str", old=("CELERY_EVENT_SERIALIZER",),
            doc="Serializer for events."),
    Setting("event_queue_prefix", "celeryev", "str", old=("CELERY_EVENT_QUEUE_PREFIX",),
            doc="Prefix of event receiver queue names."),
    Setting("event_queue_ttl", 5.0, "seconds", old=("CELERY_EVENT_QUEUE_TTL",),
            doc="Message time to live in event receiver queues."),
    Setting("event_queue_expires", 60.0, "seconds", old=("CELERY_EVENT_QUEUE_EXPIRES",),
            doc="How long an idle event receiver queue lives."),
    Setting("event_queue_durable", False, "bool", old=("CELERY_EVENT_QUEUE_DURABLE",),
            doc="Make event receiver queues durable."),
    Setting("event_queue_exclusive", True, "bool", old=("CELERY_EVENT_QUEUE_EXCLUSIVE",),
            doc="Make event receiver queues exclusive."),

    # -- Daemon options (read by the worker, beat and events commands) ----------------------
    Setting("worker_logfile", None, "any", doc="Log file of the worker."),
    Setting("worker_pidfile", None, "any", doc="PID file of the worker."),
    Setting("worker_uid", None, "any", doc="User (name or id) the worker runs as."),
    Setting("worker_gid", None, "any", doc="Group (name or id) the worker runs as."),
    Setting("worker_umask", None, "any", doc="umask of the detached worker."),
    Setting("worker_executable", None, "any", doc="Python executable used to detach the worker."),
    Setting("beat_logfile", None, "any", doc="Log file of beat."),
    Setting("beat_pidfile", None, "any", doc="PID file of beat."),
    Setting("beat_uid", None, "any", doc="User (name or id) beat runs as."),
    Setting("beat_gid", None, "any", doc="Group (name or id) beat runs as."),
    Setting("beat_umask", None, "any", doc="umask of detached beat."),
    Setting("beat_executable", None, "any", doc="Python executable used to detach beat."),
    Setting("events_logfile", None, "any", doc="Log file of the events monitor."),
    Setting("events_pidfile", None, "any", doc="PID file of the events monitor."),
    Setting("events_uid", None, "any", doc="User (name or id) the events monitor runs as."),
    Setting("events_gid", None, "any", doc="Group (name or id) the events monitor runs as."),
    Setting("events_umask", None, "any", doc="umask of the detached events monitor."),
    Setting("events_executable", None, "any",
            doc="Python executable used to detach the events monitor."),

    # -- celeriac only ----------------------------------------------------------------------
    Setting("sqlite_path", "celeriac.db", "any",
            doc="celeriac only: file of the embedded SQLite broker and result backend, relative "
                "to the working directory."),
)
# fmt: on

SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}

#: Legacy upper-case name -> new name, e.g. ``CELERYD_PREFETCH_MULTIPLIER`` ->
#: ``worker_prefetch_multiplier``.
OLD_NAMES: dict[str, str] = {old: setting.name for setting in SETTINGS for old in setting.old}

#: Every setting's default, read-only.
DEFAULTS: Mapping[str, Any] = MappingProxyType({s.name: s.default for s in SETTINGS})

#: Settings an environment variable can supply when they are not set (or set to None).
#: Celery lets these variables win over everything; celeriac lets an explicit setting win,
#: so a value written in code is never silently replaced.
ENV_VARS: Mapping[str, str] = MappingProxyType(
    {
        "broker_url": "CELERY_BROKER_URL",
        "broker_read_url": "CELERY_BROKER_READ_URL",
        "broker_write_url": "CELERY_BROKER_WRITE_URL",
        "result_backend": "CELERY_RESULT_BACKEND",
    }
)

#: Name prefixes of settings that popular extensions read from ``app.conf`` (django-celery-beat
#: and celery-sqlalchemy-scheduler's ``beat_dburi``, RedBeat, django-celery-results, Flower).
#: Celery stores any name, so their users put these in the same config module; refusing them
#: would break working configs. They are stored verbatim and not checked.
EXTENSION_PREFIXES: tuple[str, ...] = (
    "beat_dburi",
    "redbeat_",
    "django_celery_",
    "flower_",
    "sqlalchemy_",
)

_MASK = "********"


# -- names ------------------------------------------------------------------------------------


def canonical_name(name: str) -> str | None:
    """Return the name ``name`` is stored under, or None if it is not a setting.

    A new name is itself, a legacy name maps to its new name, and an extension setting
    (see ``EXTENSION_PREFIXES``) is kept verbatim.
    """
    if name in SETTINGS_BY_NAME:
        return name
    if name in OLD_NAMES:
        return OLD_NAMES[name]
    if name.lower().startswith(EXTENSION_PREFIXES):
        return name
    return None


def closest_settings(name: str, *, limit: int = 3) -> list[str]:
    """Return up to ``limit`` valid names that look like ``name``, best first.

    A legacy name written in the wrong case is answered with its new name, and an
    upper-case typo is also matched against the legacy names (``CELERYD_CONCURENCY`` finds
    ``CELERYD_CONCURRENCY``).
    """
    found: list[str] = []
    if name.upper() in OLD_NAMES:
        found.append(OLD_NAMES[name.upper()])
    if name.isupper():
        found += _close_matches(name, OLD_NAMES, limit)
    found += _close_matches(name.lower(), SETTINGS_BY_NAME, limit)
    return list(dict.fromkeys(found))[:limit]


def _close_matches(word: str, candidates: Iterable[str], limit: int) -> list[str]:
    """Names that ``word`` begins, or else the best match and those nearly as good.

    A cut-off name (``worker_prefetch``) means one it begins. Otherwise ``task_serialiser``
    is meant as ``task_serializer``, and naming ``event_serializer`` too would blur the hint.
    """
    candidates = list(candidates)
    if len(word) >= 6:
        longer = sorted((name for name in candidates if name.startswith(word)), key=len)
        if longer:
            return longer[:limit]
    matches = difflib.get_close_matches(word, candidates, n=limit, cutoff=0.6)
    scores = [difflib.SequenceMatcher(None, word, match).ratio() for match in matches]
    return [
        match for match, score in zip(matches, scores, strict=True) if score >= scores[0] - 0.05
    ]


def _unknown(name: str, suggestions: Iterable[str] | None = None, note: str = "") -> str:
    """The message of an unknown-setting error: the name, then the closest valid names."""
    matches = list(closest_settings(name) if suggestions is None else suggestions)
    text = f"Unknown setting {name!r}{note}."
    if matches:
        text += " Did you mean " + " or ".join(repr(match) for match in matches) + "?"
    return text


def _canonical_or_raise(name: str) -> str:
    key = canonical_name(name)
    if key is None:
        raise UnknownSettingError(_unknown(name))
    return key


# -- values -----------------------------------------------------------------------------------

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
    raise TypeError(value)


def _to_int(value: Any) -> int:
    # bool is an int subclass, but `worker_concurrency=True` is a mistake, not a number.
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(value)


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return float(value.strip())
    raise TypeError(value)


def _to_seconds(value: Any) -> int | float | timedelta:
    # A timedelta is kept as given (result_expires=timedelta(days=1) reads back the same);
    # Settings.seconds() converts when a number is needed.
    return value if isinstance(value, timedelta) else _to_number(value)


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(value)


def _to_list(value: Any) -> Any:
    # Strings come from the environment and the command line: "json,msgpack".
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    raise TypeError(value)


def _to_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value
    raise TypeError(value)


_COERCE: dict[str, tuple[Callable[[Any], Any], str]] = {
    "bool": (_to_bool, "a boolean (True/False, or 'true'/'false'/'1'/'0')"),
    "int": (_to_int, "an integer"),
    "float": (_to_number, "a number"),
    "seconds": (_to_seconds, "a number of seconds or a timedelta"),
    "str": (_to_str, "a string"),
    "list": (_to_list, "a list of strings (or one comma-separated string)"),
    "dict": (_to_dict, "a dict"),
}


def _coerce(key: str, value: Any) -> Any:
    """Check ``value`` against the type of setting ``key``, converting unambiguous strings."""
    setting = SETTINGS_BY_NAME.get(key)
    if value is None or setting is None or setting.type == "any":
        return value
    convert, expected = _COERCE[setting.type]
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"Setting {key!r} expects {expected}, got {value!r} ({type(value).__name__})."
        ) from exc


def _merge(entries: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Collect ``(written name, stored name, value)`` entries, refusing two names for one setting.

    Celery refuses configs that mix legacy and new names; here the conflict that matters is
    two spellings of the same setting, where which one wins would be an accident of order.
    """
    values: dict[str, Any] = {}
    written: dict[str, str] = {}
    for source, key, value in entries:
        if key in written and written[key] != source:
            raise ImproperlyConfigured(
                f"{written[key]!r} and {source!r} both set {key!r}; keep one of them, "
                f"preferably {key!r}. (Mixing legacy and new setting names is not allowed.)"
            )
        written[key] = source
        values[key] = value
    return values


def _pairs(other: Any) -> Iterator[tuple[str, Any]]:
    """The ``(name, value)`` pairs of a mapping, a keys()-object or an iterable of pairs."""
    if other is None:
        return iter(())
    if isinstance(other, Mapping):
        return iter(other.items())
    if hasattr(other, "keys"):
        # Only keys() is promised by such objects (dict.update's protocol), not iteration.
        return ((key, other[key]) for key in other.keys())  # noqa: SIM118
    return iter(other)


# -- masking ----------------------------------------------------------------------------------

_SECRET_WORDS = ("password", "passwd", "secret", "token")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s;]*:)(?P<pw>[^@/\s;]+)@")


def _is_secret_name(name: str) -> bool:
    # Word-wise, so that "security_key" and "s3_secret_access_key" are hidden while
    # "cassandra_keyspace", "global_keyprefix" and routing keys are shown.
    words = name.lower().replace("routing_key", "routing").split("_")
    return "key" in words or any(secret in word for word in words for secret in _SECRET_WORDS)


def mask_url_passwords(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``********``."""
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}{_MASK}@", text)


def _censor(name: str, value: Any) -> Any:
    """``value`` as it may be shown: secrets masked, URL passwords masked, recursively."""
    if value is None or value == "":
        return value
    if _is_secret_name(name):
        return _MASK
    if isinstance(value, str):
        return mask_url_passwords(value)
    if isinstance(value, Mapping):
        return {key: _censor(str(key), item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_censor("", item) for item in value)
    return value


# -- the settings object ----------------------------------------------------------------------


class Settings(MutableMapping[str, Any]):
    """The layered settings behind ``app.conf``: explicit changes over the defaults.

    A name is read from the first layer that has it: the explicit changes, then (for the
    names in ``ENV_VARS`` only) the environment, then defaults added with
    :meth:`add_defaults`, then the table. Mutable defaults (dicts) are copied into the
    object on first read, so ``conf.beat_schedule['x'] = ...`` changes this object only.

    Names may be read and written as attributes or items; legacy upper-case names are
    accepted and stored under the new name. Writing checks the value against the table and
    an unknown name raises :class:`UnknownSettingError` naming the closest valid one.
    Attributes starting with ``_`` are ordinary Python attributes, never settings.
    """

    _changes: dict[str, Any]
    _defaults: dict[str, Any]
    #: Counts the writes to this object (see :attr:`version`).
    _version: int

    def __init__(self, changes: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        self._changes = {}
        self._defaults = {}
        self._version = 0
        self.update(changes, **kwargs)

    @property
    def version(self) -> int:
        """A number that changes whenever a setting is set, deleted or given a new default.

        Whoever derives something from the settings (the app's resolved calling options)
        keeps it while this number stays the same. Changing a mutable value in place
        (``conf.task_routes['x'] = ...``) does not count: assign the setting again.
        """
        return self._version

    # -- mapping protocol

    def __getitem__(self, name: str) -> Any:
        key = _canonical_or_raise(name)
        if key in ENV_VARS:
            return self._env_backed(key)
        if key in self._changes:
            return self._changes[key]
        return self._default(key)

    def __setitem__(self, name: str, value: Any) -> None:
        key = _canonical_or_raise(name)
        self._changes[key] = _coerce(key, value)
        self._version += 1

    def __delitem__(self, name: str) -> None:
        """Forget an explicit change; the setting reads its default again."""
        key = _canonical_or_raise(name)
        if key not in SETTINGS_BY_NAME and key not in self._changes:
            raise KeyError(name)
        self._changes.pop(key, None)
        self._version += 1

    def __iter__(self) -> Iterator[str]:
        yield from SETTINGS_BY_NAME
        # Extension settings exist only once they are given a value.
        extra = {**self._defaults, **self._changes}
        yield from (name for name in extra if name not in SETTINGS_BY_NAME)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        key = canonical_name(name) if isinstance(name, str) else None
        if key is None:
            return False
        return key in SETTINGS_BY_NAME or key in self._changes or key in self._defaults

    def update(self, other: Any = None, /, **kwargs: Any) -> None:
        """Set several settings at once; nothing is changed if any name or value is wrong.

        Raises:
            UnknownSettingError: A name is not a setting.
            ImproperlyConfigured: A value has the wrong type, or a legacy and a new name
                both set the same setting.
        """
        pairs = [*_pairs(other), *kwargs.items()]
        merged = _merge((name, _canonical_or_raise(name), value) for name, value in pairs)
        self._changes.update({key: _coerce(key, value) for key, value in merged.items()})
        self._version += 1

    def clear(self) -> None:
        """Forget every explicit change."""
        self._changes.clear()
        self._version += 1

    def popitem(self) -> tuple[str, Any]:
        """Forget the most recent explicit change and return it."""
        if not self._changes:
            raise KeyError("popitem(): no setting has been changed")
        self._version += 1
        return self._changes.popitem()

    # -- attribute access

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Private names (and copy/pickle probes such
        # as __deepcopy__) must fail fast, without a difflib search.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            # Attribute access must raise AttributeError so getattr(conf, name, default)
            # works; the KeyError adds nothing to the message.
            message = str(exc) if isinstance(exc, UnknownSettingError) else f"{name!r} is not set"
            raise AttributeError(message) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            object.__delattr__(self, name)
        else:
            del self[name]

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *SETTINGS_BY_NAME]

    def __repr__(self) -> str:
        return f"<Settings: {len(self._changes)} changed of {len(SETTINGS_BY_NAME)}>"

    def __copy__(self) -> Settings:
        return self.copy()

    def copy(self) -> Settings:
        """An independent copy: changing one never changes the other."""
        clone = Settings()
        clone._changes = copy.deepcopy(self._changes)
        clone._defaults = copy.deepcopy(self._defaults)
        return clone

    # -- layers

    @property
    def changes(self) -> dict[str, Any]:
        """A copy of the explicit changes (``name: value``), under the new names."""
        return dict(self._changes)

    @property
    def defaults(self) -> Mapping[str, Any]:
        """Read-only view of the defaults: the table, overlaid by :meth:`add_defaults`."""
        return MappingProxyType({**DEFAULTS, **self._defaults})

    def add_defaults(self, mapping: Mapping[str, Any]) -> None:
        """Replace defaults for this object only (``app.add_defaults``); changes still win."""
        merged = _merge((name, _canonical_or_raise(name), value) for name, value in _pairs(mapping))
        self._defaults.update({key: _coerce(key, value) for key, value in merged.items()})
        self._version += 1

    def _default(self, key: str) -> Any:
        if key in self._defaults:
            return self._defaults[key]
        setting = SETTINGS_BY_NAME.get(key)
        if setting is None:
            raise KeyError(key)  # an extension setting that was never given a value
        if isinstance(setting.default, Mapping):
            self._defaults[key] = copy.deepcopy(dict(setting.default))
            return self._defaults[key]
        return setting.default

    def _env_backed(self, key: str) -> Any:
        # None counts as "not set", so Celery(broker=None) does not hide CELERY_BROKER_URL.
        value = self._changes.get(key)
        if value is None:
            value = os.environ.get(ENV_VARS[key]) or None
        return self._default(key) if value is None else value

    # -- reading helpers

    def find_value_for_key(self, name: str, namespace: str = "celery") -> Any:
        """Read a setting by a loose name: new, legacy, any case, or without its namespace.

        ``find_value_for_key('always_eager')`` finds ``CELERY_ALWAYS_EAGER``, that is
        ``task_always_eager``.

        Raises:
            UnknownSettingError: No spelling of ``name`` is a setting.
        """
        prefixed = f"{namespace}_{name}"
        for candidate in (name, name.lower(), prefixed.lower(), prefixed.upper()):
            if canonical_name(candidate) is not None:
                return self[candidate]
        raise UnknownSettingError(_unknown(name))

    def seconds(self, name: str) -> float | None:
        """Read a duration setting as seconds: a timedelta or number becomes a float.

        Raises:
            ImproperlyConfigured: The value is neither a number, a timedelta nor None.
        """
        value = self[name]
        if value is None:
            return None
        if isinstance(value, timedelta):
            return value.total_seconds()
        try:
            return float(_to_number(value))
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"Setting {name!r} expects a number of seconds or a timedelta, got {value!r}."
            ) from exc

    def table(self, with_defaults: bool = False, censored: bool = True) -> dict[str, Any]:
        """The settings as a plain dict: the explicit changes, or every setting.

        As in Celery, secrets are masked unless ``censored=False`` (see :meth:`humanize`).
        """
        names = list(self) if with_defaults else list(self._changes)
        values = {name: self[name] for name in names}
        if censored:
            return {name: _censor(name, value) for name, value in values.items()}
        return values

    def humanize(self, with_defaults: bool = False, censored: bool = True) -> str:
        """One ``name: repr(value)`` line per setting, sorted, for reports and logs.

        Values of names holding a password, secret, token or key are shown as
        ``'********'``, as are the passwords inside URLs.
        """
        table = self.table(with_defaults=with_defaults, censored=censored)
        return "\n".join(f"{name}: {value!r}" for name, value in sorted(table.items()))


# -- loading config sources -------------------------------------------------------------------


def resolve_config_source(source: Any) -> Any:
    """Return the object a config source names.

    A string is imported: ``'celeryconfig'`` (a module), ``'proj.settings:Config'`` or
    ``'proj.settings.Config'`` (an attribute; Django's ``'django.conf:settings'``). Any
    other value is returned as it is.

    Raises:
        ImportError: The string does not name an importable module or attribute.
    """
    if isinstance(source, str):
        return symbol_by_name(source)
    return source


def load_object_settings(obj: Any, *, namespace: str | None = None) -> dict[str, Any]:
    """Return the settings that a module, class, object or mapping defines, by new name.

    Without a namespace, attributes (or keys) named like settings count: new lower-case
    names and legacy upper-case ones. Private names, code (modules, functions, classes) and
    upper-case names that are not legacy settings are left alone. A module, class or mapping
    is read strictly: any other lower-case name is taken for a misspelt setting.

    With ``namespace='CELERY'`` only names starting with ``CELERY_`` count; the prefix is
    dropped and the rest lower-cased (``CELERY_BROKER_URL`` -> ``broker_url``). Legacy
    names that happen to start with the prefix (``CELERY_ALWAYS_EAGER``) are recognised too.

    Raises:
        UnknownSettingError: A name looks like a setting but is not one; the message names
            the closest valid one.
        ImproperlyConfigured: A legacy and a new name both set the same setting.
    """
    entries = _namespaced_entries(obj, namespace) if namespace else _plain_entries(obj)
    return _merge(entries)


def _names(obj: Any) -> list[str]:
    if isinstance(obj, Mapping):
        names = [name for name in obj if isinstance(name, str)]
    elif isinstance(obj, ModuleType):
        names = list(vars(obj))
    else:
        names = dir(obj)
    return [name for name in names if not name.startswith("_")]


def _value(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _plain_entries(obj: Any) -> Iterator[tuple[str, str, Any]]:
    # Other objects (Django's settings, a Flask config object) hold many unrelated
    # lower-case attributes, so only modules, classes and mappings are read strictly.
    strict = isinstance(obj, (ModuleType, type, Mapping))
    for name in _names(obj):
        key = canonical_name(name)
        if key is not None:
            yield name, key, _value(obj, name)
        elif strict and name.islower() and not _is_code(obj, _value(obj, name)):
            raise UnknownSettingError(
                _unknown(name, note=f" in {_describe(obj)}")
                + " (Give other values a name starting with '_'.)"
            )


def _namespaced_entries(obj: Any, namespace: str) -> Iterator[tuple[str, str, Any]]:
    prefix = namespace.rstrip("_").upper() + "_"
    for name in _names(obj):
        if not name.upper().startswith(prefix):
            continue
        short = name[len(prefix) :].lower()
        key = short if short in SETTINGS_BY_NAME else canonical_name(short)
        key = key or OLD_NAMES.get(name.upper())
        if key is None:
            suggestions = [prefix + match.upper() for match in closest_settings(short)]
            raise UnknownSettingError(
                _unknown(name, suggestions, note=f" (namespace {namespace!r})")
            )
        yield name, key, _value(obj, name)


def _is_code(obj: Any, value: Any) -> bool:
    """Whether ``value`` is an import or a helper rather than a (misspelt) setting value."""
    if isinstance(obj, Mapping):
        return False  # a mapping holds no imports: every lower-case key is meant as a setting
    return callable(value) or isinstance(value, (ModuleType, property))


def _describe(obj: Any) -> str:
    if isinstance(obj, ModuleType):
        return f"config module {obj.__name__!r}"
    if isinstance(obj, type):
        return f"config class {obj.__qualname__!r}"
    return "the config mapping"


# Kept last so a bad row fails the import instead of misbehaving later.
assert len(OLD_NAMES) == sum(len(setting.old) for setting in SETTINGS), "legacy name reused"
assert not set(OLD_NAMES) & set(SETTINGS_BY_NAME), "legacy name equals a new name"
