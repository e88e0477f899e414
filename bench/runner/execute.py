"""Run one driver job in its virtual environment; repeat it when the machine disturbed it.

A run is *disturbed* when, in any of its measured windows, processes that are not ours (nor
kernel threads) used more than ``DISTURBED_CORES`` cores, or the hypervisor stole that much.
Before each attempt we also wait (bounded) for the machine to be quiet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from runner.envs import BENCH, ENVS, child_env
from runner.plan import Sizes, venv_of
from runner.quiet import wait_for_quiet

DISTURBED_CORES = 0.2
#: psutil counts CPU in 10 ms ticks: below this many seconds the ratio is noise, not a neighbour.
MIN_OTHER_CPU_S = 0.05
DRIVER_TIMEOUT_S = 240.0


def disturbance(outcome: dict[str, Any]) -> float:
    """The worst window's other+steal cores, ignoring windows too short to judge."""
    worst = 0.0
    for window in outcome.get("windows", []):
        cores = window["other_cores"] + window["steal_cores"]
        if cores * window["wall_s"] >= MIN_OTHER_CPU_S:
            worst = max(worst, cores)
    return worst


def run_driver(system: str, job: str, sizes: Sizes, extra_env: dict[str, str]) -> dict[str, Any]:
    """One driver process; its last output line is the JSON outcome."""
    python = ENVS[venv_of(system)].python
    argv = [str(python), str(BENCH / "driver.py"), system, job, *sizes.driver_args(job)]
    proc = subprocess.Popen(
        argv,
        cwd=BENCH,
        env=child_env(extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return {"ok": False, "error": f"driver timed out after {DRIVER_TIMEOUT_S:.0f}s"}
    except BaseException:  # interrupted: stop the driver (and so its worker) before leaving
        _stop(proc)
        raise
    lines = out.strip().splitlines()
    try:
        outcome: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "error": f"driver exit {proc.returncode}: {err[-1500:]}"}
    if not outcome.get("ok"):
        outcome["stderr"] = err[-3000:]
    return outcome


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    # SIGTERM lets the driver stop its workers; SIGKILL its group if it does not exit.
    with _suppress():
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        with _suppress():
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(ProcessLookupError, PermissionError)


@dataclass
class Runner:
    sizes: Sizes
    extra_env: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    records: list[dict[str, Any]] = field(default_factory=list)
    extra_s: float = 0.0  # spent on repeats and quiet waits, bounded by sizes.retry_budget

    def may_repeat(self) -> bool:
        return self.extra_s < self.sizes.retry_budget

    def measure(self, system: str, job: str, rep: int) -> dict[str, Any]:
        """Run until one attempt is undisturbed (or attempts/time run out); keep them all."""
        attempts: list[dict[str, Any]] = []
        for number in range(1, self.sizes.attempts + 1):
            wait = min(self.sizes.quiet_wait, max(0.0, self.sizes.retry_budget - self.extra_s))
            waited = wait_for_quiet(DISTURBED_CORES, wait)
            self.extra_s += waited
            t0 = time.monotonic()
            outcome = run_driver(system, job, self.sizes, self.extra_env)
            if number > 1:
                self.extra_s += time.monotonic() - t0
            outcome.update(system=system, job=job, rep=rep, attempt=number)
            outcome["waited_s"] = round(waited, 2)
            outcome["seconds"] = round(time.monotonic() - t0, 2)
            outcome["disturbance"] = round(disturbance(outcome), 3)
            outcome["disturbed"] = outcome["disturbance"] > DISTURBED_CORES
            attempts.append(outcome)
            _print(outcome)
            if (outcome["ok"] and not outcome["disturbed"]) or not self.may_repeat():
                break
        best = _best(attempts)
        for outcome in attempts:
            outcome["accepted"] = outcome is best
        self.records.extend(attempts)
        return best


def _best(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [a for a in attempts if a["ok"]]
    if not ok:
        return attempts[-1]
    return min(ok, key=lambda a: (a["disturbed"], a["disturbance"]))


def _print(outcome: dict[str, Any]) -> None:
    head = f"[bench] run {outcome['rep']} {outcome['system']:<24} {outcome['job']:<14}"
    if not outcome["ok"]:
        print(f"{head} FAILED: {outcome.get('error', '?')[:300]}", flush=True)
        return
    shown = []
    for key, value in outcome.get("metrics", {}).items():
        if key.endswith("_rate"):
            shown.append(f"{key[:-5]} {value:,.0f}/s")
        elif key in ("w3_p50_ms", "w4_startup_s", "w4_rss_mib"):
            shown.append(f"{key} {value:.2f}")
    mark = f"  DISTURBED ({outcome['disturbance']:.2f} cores)" if outcome["disturbed"] else ""
    print(f"{head} {', '.join(shown)} [{outcome['seconds']:.1f}s]{mark}", flush=True)
