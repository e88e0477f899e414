"""Producer: call shared tasks, by object and by name."""

import sys

from task.app import app
from task.tasks import add, my_task

total = add.delay(2, 3).get(timeout=10)
print("add(2, 3) =", total)
print("my_task() =", my_task.delay().get(timeout=10))
# By name, without importing the function.
sent = app.send_task("email:send", args=["a@example.com"]).get(timeout=10)
print("email:send ->", sent)
print("registered:", sorted(app.tasks.regular()))

if total != 5 or sent != "mail sent to a@example.com":
    sys.exit("unexpected results")
print("OK")
