"""Producer: one task that succeeds on its second attempt, one that gives up."""

import sys

from tasks import ATTEMPTS, always_fails, unreliable_task

ATTEMPTS.unlink(missing_ok=True)

value = unreliable_task.delay().get(timeout=15)
print("unreliable_task ->", value)

failing = always_fails.delay()
try:
    failing.get(timeout=15)
except ConnectionError as exc:
    print("always_fails raised:", repr(exc))
print("always_fails state:", failing.state)

if value != {"answer": "service answered", "attempt": 2, "retries": 1} or not failing.failed():
    sys.exit("unexpected results")
print("OK")
