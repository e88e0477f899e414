"""The demo's tasks: the app needs no broker URL (the embedded SQLite file is the default)."""

from celeriac import Celery

app = Celery("tasks")


@app.task
def add(x, y):
    return x + y


@app.task
def multiply(x, y):
    return x * y


@app.task
def tsum(numbers):
    return sum(numbers)
