"""Run tasks eagerly: no worker, no waiting; ``delay`` returns an ``EagerResult``."""

import sys

from tasks import add, div

result = add.delay(4, 6)
print("type:", type(result).__name__)
print("state:", result.state)
print("add(4, 6) =", result.get())

failing = div.delay(1, 0)
print("div(1, 0) failed:", failing.failed(), repr(failing.result))

ok = (
    type(result).__name__ == "EagerResult"
    and result.get() == 10
    and result.successful()
    and failing.failed()
    and isinstance(failing.result, ZeroDivisionError)
)
if not ok:
    sys.exit("unexpected results")
print("OK")
