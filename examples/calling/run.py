"""Producer: delay, apply_async with args, countdown, eta, priority, and a chosen id."""

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from tasks import task_1

started = time.monotonic()
results = {
    "delay()": task_1.delay(),
    "apply_async()": task_1.apply_async(),
    "apply_async(args=(1,))": task_1.apply_async(args=(1,)),
    "apply_async(kwargs={'x': 2})": task_1.apply_async(kwargs={"x": 2}),
    # Run 1 second from now.
    "countdown=1": task_1.apply_async(args=(3,), countdown=1),
    # An exact time; use an aware datetime.
    "eta": task_1.apply_async(args=(4,), eta=datetime.now(timezone.utc) + timedelta(seconds=1)),
    "priority=0": task_1.apply_async(args=(5,), priority=0),
}
task_id = str(uuid.uuid4())
results["task_id=..."] = task_1.apply_async(args=(6,), task_id=task_id)

values = {}
for label, result in results.items():
    values[label] = result.get(timeout=10)
    print(f"{label:30} -> {values[label]}")
elapsed = time.monotonic() - started
print(f"countdown/eta respected: {elapsed >= 1}")

expected = ["ok 0", "ok 0", "ok 1", "ok 2", "ok 3", "ok 4", "ok 5", "ok 6"]
if list(values.values()) != expected or elapsed < 1 or results["task_id=..."].id != task_id:
    sys.exit("unexpected results")
print("OK")
