"""The app; importing the tasks module registers its shared tasks on it."""

from celeriac import Celery

app = Celery("task")

import task.tasks  # noqa: E402, F401  (registers the tasks)
