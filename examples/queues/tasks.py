"""Tasks spread over the queues of ``celeryconfig.py``."""

from celeriac import Celery

app = Celery("tasks")
app.config_from_object("celeryconfig")


def _queue(task):
    return task.request.delivery_info["routing_key"]


@app.task(bind=True)
def add(self, x, y):
    return [x + y, _queue(self)]


# A queue given on the task itself.
@app.task(bind=True, queue="email")
def send_email(self, address):
    return [f"mail sent to {address}", _queue(self)]


@app.task(bind=True)
def send_sms(self, number):
    return [f"sms sent to {number}", _queue(self)]


@app.task(bind=True)
def cleanup(self):
    return ["cleaned", _queue(self)]
