"""Producer: a task retried automatically, a task that fails, and the handlers they ran."""

import sys
import time

from tasks import ATTEMPTS, EVENTS, parse, task_process_notification

ATTEMPTS.unlink(missing_ok=True)
EVENTS.unlink(missing_ok=True)

value = task_process_notification.delay().get(timeout=15)
print("task_process_notification ->", value)

failing = parse.delay("not a number")
try:
    failing.get(timeout=10)
except ValueError as exc:
    print("parse raised:", repr(exc))

# Handlers run in the worker just after the result is stored, and on_retry may finish
# after the retried attempt: wait for all three, and ignore their order.
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    events = EVENTS.read_text().splitlines() if EVENTS.exists() else []
    if len(events) >= 3:
        break
    time.sleep(0.05)
events.sort()
for line in events:
    print("handler:", line)

expected = [
    "tasks.parse failed: ValueError(\"invalid literal for int() with base 10: 'not a number'\")",
    "tasks.task_process_notification retried: ConnectionError('mimic random error')",
    "tasks.task_process_notification succeeded: 'notified on attempt 2'",
]
if value != "notified on attempt 2" or not failing.failed() or events != expected:
    sys.exit("unexpected results")
print("OK")
