"""Tasks whose results are looked up later by id."""

from celeriac import Celery

app = Celery("myapp")


@app.task
def add(x, y):
    return x + y


@app.task
def div(x, y):
    return x / y
