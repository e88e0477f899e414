"""Producer: show the loaded settings, then call ``add`` on the worker."""

import sys

from celeriac_app import app
from tasks import add

print("task_serializer:", app.conf.task_serializer)
print("accept_content:", app.conf.accept_content)
print("timezone:", app.conf.timezone)
print("result_expires:", app.conf.result_expires)

result = add.delay(4, 6)
value = result.get(timeout=10)
print("add(4, 6) =", value)
print("done at:", result.date_done)

if value != 10 or app.conf.timezone != "Europe/Oslo" or result.date_done is None:
    sys.exit("unexpected results")
print("OK")
