"""Settings of the app in ``apis``. No broker URL: the embedded SQLite file is used."""

# Modules of tasks the worker imports at start.
imports = ("tasks.data_collection",)

enable_utc = True
timezone = "Asia/Shanghai"

broker_connection_retry_on_startup = True
