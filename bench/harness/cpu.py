"""CPU and memory accounting with psutil: one process tree, the broker server, the whole machine.

A :class:`Snapshot` records every process's CPU seconds and the machine's counters at one
instant. The difference of two snapshots says how much CPU the worker tree, the broker and
everyone else used in between; "everyone else" is what marks a run as disturbed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

#: Machine counters that are work done by processes (irq/softirq are not attributed to a process,
#: and on loopback they are mostly our own traffic, so they are reported but not judged).
_BUSY_FIELDS = ("user", "nice", "system")


def _own_cpu(times: psutil._common.pcputimes) -> float:
    return float(times.user + times.system)


def _reaped_cpu(times: psutil._common.pcputimes) -> float:
    # The CPU of children the process has reaped: lands all at once when a child exits.
    return float(times.children_user + times.children_system)


def tree_pids(pid: int) -> set[int]:
    """``pid`` and all its live descendants (empty if it has exited)."""
    try:
        root = psutil.Process(pid)
        return {pid} | {child.pid for child in root.children(recursive=True)}
    except psutil.Error:
        return set()


def tree_memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of ``pid`` and its descendants, in MiB. PSS splits shared pages fairly."""
    rss = pss = 0.0
    for member in tree_pids(pid):
        try:
            info = psutil.Process(member).memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:``port`` (the broker server), if visible."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


@dataclass
class Snapshot:
    """CPU seconds of every process, the machine's counters and the time, at one instant."""

    at: float
    per_pid: dict[int, float]  # own CPU seconds
    reaped: dict[int, float]  # CPU seconds of reaped children
    names: dict[int, str]
    kernel: set[int]
    machine_busy: float
    machine_steal: float
    machine_irq: float
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        per_pid: dict[int, float] = {}
        reaped: dict[int, float] = {}
        names: dict[int, str] = {}
        kernel: set[int] = set()
        for proc in psutil.process_iter(["pid", "ppid", "name", "cpu_times"]):
            info = proc.info
            if info["cpu_times"] is None:
                continue
            per_pid[info["pid"]] = _own_cpu(info["cpu_times"])
            reaped[info["pid"]] = _reaped_cpu(info["cpu_times"])
            names[info["pid"]] = info["name"] or "?"
            if info["ppid"] == 2 or info["pid"] == 2:
                kernel.add(info["pid"])
        machine = psutil.cpu_times()
        return cls(
            at=time.perf_counter(),
            per_pid=per_pid,
            reaped=reaped,
            names=names,
            kernel=kernel,
            machine_busy=sum(getattr(machine, name) for name in _BUSY_FIELDS),
            machine_steal=getattr(machine, "steal", 0.0),
            machine_irq=getattr(machine, "irq", 0.0) + getattr(machine, "softirq", 0.0),
        )

    def cpu_of(self, pids: set[int]) -> float:
        """CPU of ``pids`` and of the children they reaped (our pools fork and reap)."""
        return sum(self.per_pid.get(pid, 0.0) + self.reaped.get(pid, 0.0) for pid in pids)


@dataclass
class Usage:
    """What happened between two snapshots.

    ``other_cores`` counts the own CPU (not their reaped children's, which arrives in one lump
    when a child exits) of processes that are neither ours nor kernel threads and are alive at
    the end; ``unattributed_cores`` is the rest of the machine's busy time (processes that came
    and went, zombies, fork and exit work of our own pools): reported, not judged, because
    fork-heavy workers (RQ) produce it themselves.
    """

    wall: float
    worker_cpu: float
    broker_cpu: float
    ours_cpu: float
    other_cores: float
    unattributed_cores: float
    steal_cores: float
    irq_cores: float
    top_other: list[tuple[str, float]]

    @property
    def disturbance(self) -> float:
        """Cores used by other processes plus cores stolen by the hypervisor."""
        return self.other_cores + self.steal_cores

    def as_dict(self) -> dict[str, object]:
        return {
            "wall_s": round(self.wall, 4),
            "worker_cpu_s": round(self.worker_cpu, 4),
            "broker_cpu_s": round(self.broker_cpu, 4),
            "ours_cpu_s": round(self.ours_cpu, 4),
            "other_cores": round(self.other_cores, 3),
            "other_cpu_s": round(self.other_cores * self.wall, 4),
            "unattributed_cores": round(self.unattributed_cores, 3),
            "steal_cores": round(self.steal_cores, 3),
            "irq_cores": round(self.irq_cores, 3),
            "top_other": [[name, round(cpu, 3)] for name, cpu in self.top_other],
        }


def _delta(before: Snapshot, after: Snapshot, pids: set[int]) -> float:
    return max(0.0, after.cpu_of(pids) - before.cpu_of(pids & before.per_pid.keys()))


def usage(before: Snapshot, after: Snapshot, worker: set[int], servers: set[int]) -> Usage:
    """Split the CPU used between two snapshots into worker, servers, ours and others.

    ``servers`` are the broker (and result backend) server processes the run talks to.
    """
    wall = max(after.at - before.at, 1e-9)
    broker_pids = set(servers)
    ours = tree_pids(os.getpid()) | set(worker) | broker_pids
    ours_cpu = _delta(before, after, ours)
    kernel_cpu = _delta(before, after, after.kernel)
    others = _others(before, after, ours | after.kernel)
    other_cpu = sum(cpu for _, cpu in others)
    busy = after.machine_busy - before.machine_busy
    return Usage(
        wall=wall,
        worker_cpu=_delta(before, after, worker),
        broker_cpu=_delta(before, after, broker_pids),
        ours_cpu=ours_cpu,
        other_cores=other_cpu / wall,
        unattributed_cores=max(0.0, busy - ours_cpu - kernel_cpu - other_cpu) / wall,
        steal_cores=max(0.0, after.machine_steal - before.machine_steal) / wall,
        irq_cores=max(0.0, after.machine_irq - before.machine_irq) / wall,
        top_other=sorted(others, key=lambda item: -item[1])[:3],
    )


def _others(before: Snapshot, after: Snapshot, exclude: set[int]) -> list[tuple[str, float]]:
    """(name, CPU seconds) of every other live process that used CPU in between."""
    used = [
        (after.names.get(pid, "?"), cpu - before.per_pid.get(pid, 0.0))
        for pid, cpu in after.per_pid.items()
        if pid not in exclude
    ]
    return [(name, cpu) for name, cpu in used if cpu > 0.0]
