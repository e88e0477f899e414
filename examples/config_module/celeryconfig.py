"""Settings module loaded with ``app.config_from_object('celeryconfig')``.

Lowercase Celery setting names. No ``broker_url``/``result_backend``: the embedded SQLite
file is used.
"""

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]  # ignore other content
timezone = "Europe/Oslo"
enable_utc = True
# The worker imports these modules at start, so it knows their tasks.
imports = ("tasks",)
