"""A named, bound task, called in the ways ``apply_async`` offers."""

from celeriac import Celery

app = Celery(__name__)


@app.task(name="task_1", bind=True)
def task_1(self, x=0):
    return f"ok {x}"
