"""The tutorials' first example: one app and one task in ``tasks.py``.

No broker URL: the broker and the result backend are ``celeriac.db`` in the working directory.
"""

from celeriac import Celery

app = Celery("tasks")


@app.task
def add(x, y):
    return x + y
