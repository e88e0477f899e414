"""Retrying a task that fails: ``self.retry(exc=exc, countdown=...)``."""

from pathlib import Path

from celeriac import Celery

app = Celery("tasks")

# Attempts are counted in a file: the worker may run each attempt in another process.
ATTEMPTS = Path("attempts.txt")


def count_attempt():
    n = int(ATTEMPTS.read_text()) + 1 if ATTEMPTS.exists() else 1
    ATTEMPTS.write_text(str(n))
    return n


def call_flaky_service(attempt):
    # Fails the first time, works the second.
    if attempt < 2:
        raise ConnectionError("service unavailable")
    return "service answered"


@app.task(bind=True, max_retries=3)
def unreliable_task(self):
    attempt = count_attempt()
    try:
        answer = call_flaky_service(attempt)
    except ConnectionError as exc:
        raise self.retry(exc=exc, countdown=1)  # retry in 1 second
    return {"answer": answer, "attempt": attempt, "retries": self.request.retries}


@app.task(bind=True, max_retries=2)
def always_fails(self):
    try:
        raise ConnectionError("service down for good")
    except ConnectionError as exc:
        # After max_retries, retry() raises exc: the task fails with it.
        raise self.retry(exc=exc, countdown=1)
