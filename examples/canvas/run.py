"""Producer: chain, group and chord, as the tutorials write them."""

import sys

from tasks import add, callback_task, multiply, task1, task2, task3

from celeriac import chain, chord, group

# A chain: add's result (10) becomes multiply's first argument -> 30.
result = chain(add.s(4, 6) | multiply.s(3))()
chained = result.get(timeout=10)
print("chain(add.s(4, 6) | multiply.s(3)) =", chained)

# A three-step chain, each step fed by the one before.
steps = chain(task1.s("arg1"), task2.s(), task3.s())().get(timeout=10)
print("chain(task1, task2, task3) =", steps)

# A group: ten additions in parallel; get() returns their results in order.
grouped = group(add.s(i, i) for i in range(10))().get(timeout=10)
print("group(add.s(i, i) for i in range(10)) =", grouped)

# Another group, of three different calls.
print("group(task1, task1, task1) =", group(task1.s(1), task1.s(2), task1.s(3))().get(timeout=10))

# A chord: the group's results, in order, are passed to the callback once all are done.
chorded = chord(group(task1.s("a"), task1.s("b")))(callback_task.s()).get(timeout=10)
print("chord(group(...))(callback_task.s()) =", chorded)

expected = (
    chained == 30
    and steps == "task3(task2(task1(arg1)))"
    and grouped == [i + i for i in range(10)]
    and chorded == "callback got ['task1(a)', 'task1(b)']"
)
if not expected:
    sys.exit("unexpected results")
print("OK")
