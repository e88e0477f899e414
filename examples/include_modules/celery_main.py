"""The app of a project whose tasks are split into modules, listed in ``include``."""

from celeriac import Celery

app = Celery("celery_main", include=["task1", "task2"])

# Optional configuration, see the application user guide.
app.conf.update(
    result_expires=3600,
)
