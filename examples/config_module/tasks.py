"""Tasks registered on the app from ``celeriac_app.py``."""

from celeriac_app import app


@app.task
def add(x, y):
    return x + y
