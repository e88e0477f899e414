"""Producer: watch a task's PROGRESS state until it finishes."""

import sys
import time

from tasks import long_add

result = long_add.delay(4, 6)
seen = []
deadline = time.monotonic() + 15
while not result.ready() and time.monotonic() < deadline:
    if result.state == "PROGRESS":
        progress = result.info["progress"]
        if progress not in seen:
            seen.append(progress)
            print(f"PROGRESS {progress}%")
    time.sleep(0.05)

value = result.get(timeout=10)
print("state:", result.state)
print("long_add(4, 6) =", value)

if value != 10 or not seen:
    sys.exit("unexpected results")
print("OK")
