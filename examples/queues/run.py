"""Producer: each task lands on its queue."""

import sys

from tasks import add, cleanup, send_email, send_sms

calls = [
    (add.delay(1, 2), [3, "default"]),
    (add.apply_async(args=[1, 2], queue="high_priority"), [3, "high_priority"]),
    (send_email.delay("a@example.com"), ["mail sent to a@example.com", "email"]),
    (send_sms.delay("10086"), ["sms sent to 10086", "sms"]),
    (cleanup.delay(), ["cleaned", "low_priority"]),
]

ok = True
for result, expected in calls:
    value = result.get(timeout=10)
    print(f"{value[0]!r} via {value[1]}")
    ok = ok and value == expected

if not ok:
    sys.exit("unexpected results")
print("OK")
