"""Producer: call tasks from both included modules."""

import sys

from task1 import add
from task2 import sub

total = add.delay(4, 6).get(timeout=10)
difference = sub.delay(10, 4).get(timeout=10)
print("add(4, 6) =", total)
print("sub(10, 4) =", difference)

if (total, difference) != (10, 6):
    sys.exit("unexpected results")
print("OK")
