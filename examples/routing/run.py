"""Producer: send tasks and check which queue each one went through."""

import sys

from tasks import add, mul

calls = [
    ("add.delay(4, 6)", add.delay(4, 6), 10, "high_priority"),  # routed by task_routes
    ("mul.delay(2, 3)", mul.delay(2, 3), 6, "celery"),  # default queue
    # An explicit queue wins over the default.
    ("mul.apply_async([2, 5], queue=...)", mul.apply_async([2, 5], queue="high_priority"), 10,
     "high_priority"),
]  # fmt: skip

ok = True
for label, result, expected, queue in calls:
    value = result.get(timeout=10)
    print(f"{label} -> {value['result']} via {value['queue']}")
    ok = ok and value == {"result": expected, "queue": queue}

if not ok:
    sys.exit("unexpected results")
print("OK")
