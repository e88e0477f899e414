"""Development mode: ``task_always_eager=True`` runs tasks at once, in the caller."""

from celeriac import Celery

app = Celery("tasks")
app.conf.update(
    task_always_eager=True,  # no worker needed; set to False in production
)


@app.task
def add(x, y):
    return x + y


@app.task
def div(x, y):
    return x / y
