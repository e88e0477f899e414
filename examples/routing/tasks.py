"""Task routing: ``tasks.add`` goes to the ``high_priority`` queue, the rest to ``celery``."""

from celeriac import Celery

app = Celery("tasks")
app.conf.update(
    task_routes={
        "tasks.add": {"queue": "high_priority"},
    },
)


# Each task also returns the queue it was taken from, to show the routing.
@app.task(bind=True)
def add(self, x, y):
    return {"result": x + y, "queue": self.request.delivery_info["routing_key"]}


@app.task(bind=True)
def mul(self, x, y):
    return {"result": x * y, "queue": self.request.delivery_info["routing_key"]}
