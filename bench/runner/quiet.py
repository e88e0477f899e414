"""How busy the machine is, from /proc/stat: used to wait for a quiet moment before a run.

The machine is shared: when other processes use more than ``threshold`` cores, the next run
waits (a bounded time) for them to calm down. Runs are also judged afterwards, from the CPU
the driver measured during their windows (see ``runner/execute.py``).
"""

from __future__ import annotations

import os
import time


def _counters() -> tuple[float, float]:
    with open("/proc/stat") as stat:
        fields = [float(x) for x in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal, idle + iowait


def busy_cores(seconds: float = 0.15) -> float:
    """Cores in use, machine-wide, averaged over ``seconds``."""
    busy0, idle0 = _counters()
    time.sleep(seconds)
    busy1, idle1 = _counters()
    total = (busy1 - busy0) + (idle1 - idle0)
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / total if total else 0.0


def wait_for_quiet(threshold: float, max_wait: float) -> float:
    """Wait until the machine uses less than ``threshold`` cores, at most ``max_wait`` seconds.

    Returns the seconds waited.
    """
    start = time.monotonic()
    while busy_cores() >= threshold and time.monotonic() - start < max_wait:
        pass
    return time.monotonic() - start
