"""The app module (``celery_app.py`` in the tutorial); tasks live in ``tasks.py``."""

from celeriac import Celery

app = Celery("myproject")
app.config_from_object("celeryconfig")

# Settings can also be changed on app.conf, one by one or several at once.
app.conf.task_serializer = "json"
app.conf.update(
    result_expires=3600,
    worker_prefetch_multiplier=1,
)
