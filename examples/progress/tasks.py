"""A long task that reports its progress with ``update_state``."""

import time

from celeriac import Celery

app = Celery("tasks")


@app.task(bind=True)
def long_add(self, x, y, steps=5):
    for step in range(steps):
        self.update_state(state="PROGRESS", meta={"progress": step * 100 // steps})
        time.sleep(0.2)
    return x + y
