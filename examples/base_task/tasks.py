"""A base class shared by tasks: automatic retries and success/failure/retry handlers."""

from pathlib import Path

from celeriac import Celery, Task, shared_task

app = Celery("tasks")

# Files, because the handlers run in the worker, not in the producer.
ATTEMPTS = Path("attempts.txt")
EVENTS = Path("events.txt")


def record(line):
    with EVENTS.open("a") as f:
        f.write(line + "\n")


class BaseTaskWithRetry(Task):
    autoretry_for = (ConnectionError, KeyError)
    retry_kwargs = {"max_retries": 5}
    retry_backoff = True  # waits up to 1 s, 2 s, 4 s, ... between attempts

    # Called when the task fails.
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        record(f"{self.name} failed: {exc!r}")

    # Called when the task succeeds.
    def on_success(self, retval, task_id, args, kwargs):
        record(f"{self.name} succeeded: {retval!r}")

    # Called when the task is retried.
    def on_retry(self, exc, task_id, args, kwargs, einfo):
        record(f"{self.name} retried: {exc!r}")


@shared_task(bind=True, base=BaseTaskWithRetry)
def task_process_notification(self):
    n = int(ATTEMPTS.read_text()) + 1 if ATTEMPTS.exists() else 1
    ATTEMPTS.write_text(str(n))
    if n < 2:
        raise ConnectionError("mimic random error")  # retried automatically
    return f"notified on attempt {n}"


@app.task(base=BaseTaskWithRetry)
def parse(text):
    return int(text)  # ValueError is not in autoretry_for: fails at once
