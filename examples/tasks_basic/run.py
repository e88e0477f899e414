"""Producer: send ``add`` to the worker and print what comes back."""

import sys

from tasks import add

# Async call: returns an AsyncResult at once.
result = add.delay(4, 6)
print("id:", result.id)
# Wait for the worker's answer (at most 10 seconds).
value = result.get(timeout=10)
print("add(4, 6) =", value)

# Fire a few more, then collect them.
pending = [add.delay(3, 4), add.delay(10, 4)]
values = [r.get(timeout=10) for r in pending]
print("add(3, 4), add(10, 4) =", values)

# Blocking style: send and wait in one line.
print("add(4, 5) =", add.delay(4, 5).get(timeout=10))

if value != 10 or values != [7, 14] or not result.successful():
    sys.exit("unexpected results")
print("OK")
