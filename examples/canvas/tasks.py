"""The tutorials' canvas section: tasks combined into workflows.

No broker URL: the broker and the result backend are ``celeriac.db`` in the working directory.
"""

from celeriac import Celery

app = Celery("tasks")


@app.task
def add(x, y):
    return x + y


@app.task
def multiply(x, y):
    return x * y


@app.task
def task1(arg):
    return f"task1({arg})"


@app.task
def task2(value):
    return f"task2({value})"


@app.task
def task3(value):
    return f"task3({value})"


@app.task
def callback_task(results):
    return f"callback got {results}"
