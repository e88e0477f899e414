"""The demo's producer: sends tasks to the worker and prints their results."""

import time

from tasks import add, multiply, tsum

from celeriac import chain, chord

started = time.perf_counter()
results = [add.delay(i, i) for i in range(10)] + [multiply.delay(i, 3) for i in range(10)]
for result in results:
    print(f"{result.id}  {result.get(timeout=10)}")
elapsed = time.perf_counter() - started
print(f"{len(results)} tasks sent and their results read in {elapsed * 1000:.0f} ms")

# Workflows: a chain passes each result on; a chord sums a group's results when all are in.
print("chain(add.s(4, 6) | multiply.s(3)) =", chain(add.s(4, 6) | multiply.s(3))().get(timeout=10))
total = chord(add.s(i, i) for i in range(100))(tsum.s()).get(timeout=30)
print("chord(add.s(i, i) for i in range(100))(tsum.s()) =", total)
