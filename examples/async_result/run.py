"""Producer: keep only the task id, then query the result with ``AsyncResult``."""

import sys
import time

from tasks import add, app, div

from celeriac.result import AsyncResult

task_id = add.delay(4, 5).id
print("task id:", task_id)

# Later (another request, another process): rebuild the result from its id.
result = AsyncResult(task_id, app=app)
deadline = time.monotonic() + 10
while not result.ready() and time.monotonic() < deadline:
    print("Task is still running.")
    time.sleep(0.1)
if result.ready():
    print("Result:", result.result)
print("status:", result.status)
print("successful:", result.successful())
print("get:", result.get(timeout=10))

# A task that fails: its state is FAILURE and the traceback is kept.
failing = AsyncResult(div.delay(1, 0).id, app=app)
try:
    failing.get(timeout=10)
except ZeroDivisionError as exc:
    print("get raised:", type(exc).__name__)
print("failed:", failing.failed(), failing.state)
print("traceback ends with:", failing.traceback.strip().splitlines()[-1])

ok = (
    result.result == 9
    and result.status == "SUCCESS"
    and result.date_done is not None
    and failing.failed()
    and isinstance(failing.result, ZeroDivisionError)
    and "ZeroDivisionError" in failing.traceback
)
if not ok:
    sys.exit("unexpected results")
print("OK")
