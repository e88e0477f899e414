"""Drain of a RabbitMQ backlog by one celeriac worker, optionally under py-spy.

    python bench/amqp_drain.py                     # 10,000 no-op tasks, -P threads -c 2
    python bench/amqp_drain.py --tasks 20000 -c 4 --multiplier 4
    python bench/amqp_drain.py --profile out.txt   # py-spy raw flame data of the worker
    python bench/amqp_drain.py --profile out.txt --gil     # only what holds the GIL
    python bench/amqp_drain.py --attach "strace -c -f -p {pid} -o calls.txt"

The backlog is queued (with the bulk API) before the worker starts, so the figure is the
worker's drain alone: from its first completed task to its last, counted by the same
completion socket as the benchmark suite, with the CPU the worker and the RabbitMQ server
used per task over the same span. Runs in a virtual host of its own, deleted after. Needs
``rabbitmqctl`` and, for ``--profile``, ``py-spy`` beside the Python running this.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.completion import CompletionListener
from systems.taskmodule import PRELUDE

VHOST = "celeriac-amqp-drain"
QUEUE = "amqp_drain"
MODULE = """
from celeriac import Celery, group

app = Celery("drain_tasks", broker={url!r})
app.conf.task_default_queue = {queue!r}
app.conf.task_ignore_result = True
app.conf.task_acks_late = {acks_late!r}


@app.task
def noop():
    done()


def fill(count):
    for start in range(0, count, 5000):
        group(noop.s() for _ in range(min(5000, count - start))).apply_async()
"""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("-c", "--concurrency", type=int, default=2)
    parser.add_argument("--multiplier", type=int, default=None, help="--prefetch-multiplier")
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--acks-late", action="store_true")
    parser.add_argument("--profile", type=Path, help="py-spy raw output file")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--gil", action="store_true", help="py-spy --gil (GIL holders only)")
    parser.add_argument(
        "--attach", help="a command run on the worker during the drain ({pid}: its pid)"
    )
    parser.add_argument("--log", action="store_true", help="print the worker's log at the end")
    parser.add_argument("--timeout", type=float, default=120.0)
    return parser.parse_args(argv)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60, check=False)


def main(argv: list[str]) -> int:
    options = parse(argv)
    rabbitmqctl("delete_vhost", VHOST)
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    workdir = Path(tempfile.mkdtemp(prefix="celeriac-amqp-drain-"))
    try:
        return run(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        rabbitmqctl("delete_vhost", VHOST)


def run(options: argparse.Namespace, workdir: Path) -> int:
    url = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
    source = PRELUDE + MODULE.format(url=url, queue=QUEUE, acks_late=options.acks_late)
    (workdir / "drain_tasks.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(workdir), "BENCH_DONE_SOCKET": str(workdir / "s")}
    bindir = Path(sys.executable).parent
    fill = f"import drain_tasks; drain_tasks.fill({options.tasks})"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", fill], cwd=workdir, env=env, check=True)
    print(f"queued {options.tasks} in {time.perf_counter() - t0:.2f}s", flush=True)
    argv = [str(bindir / "celeriac"), "-A", "drain_tasks", "worker", "-P", options.pool]
    argv += ["-c", str(options.concurrency), "-l", "warning", "-Q", QUEUE]
    if options.multiplier is not None:
        argv += ["--prefetch-multiplier", str(options.multiplier)]
    server = broker_pid()
    with CompletionListener(workdir / "s") as listener:
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=log)
        spy = None
        try:
            if options.profile:
                spy = start_profiler(options, worker.pid, bindir)
            elif options.attach:
                command = options.attach.format(pid=worker.pid)
                spy = subprocess.Popen(command, shell=True, start_new_session=True)
            listener.wait_for(1, options.timeout)
            started = cpu_seconds(worker.pid)
            broker_started = cpu_seconds(server) if server else None
            listener.wait_for(options.tasks, options.timeout)
            count, first, last = listener.progress()
            ended = cpu_seconds(worker.pid)
            broker_ended = cpu_seconds(server) if server else None
        finally:
            if spy is not None:
                os.killpg(spy.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(60)
            worker.terminate()
            worker.wait(30)
    usage = ended - started if started is not None and ended is not None else None
    rate = (count - 1) / max(last - first, 1e-9)
    print(f"drained {count}/{options.tasks} in {last - first:.2f}s: {rate:,.0f}/s", flush=True)
    if usage is not None:
        print(f"worker CPU: {usage / max(count - 1, 1) * 1e6:.0f} us/task", flush=True)
    if broker_started is not None and broker_ended is not None:
        broker_us = (broker_ended - broker_started) / max(count - 1, 1) * 1e6
        print(f"RabbitMQ CPU: {broker_us:.0f} us/task", flush=True)
    if options.log:
        print((workdir / "worker.log").read_text()[-5000:], flush=True)
    if count < options.tasks:
        print((workdir / "worker.log").read_text()[-3000:], flush=True)
        return 1
    return 0


def start_profiler(options: argparse.Namespace, pid: int, bindir: Path) -> subprocess.Popen[bytes]:
    argv = [str(bindir / "py-spy"), "record", "-o", str(options.profile), "-f", "raw"]
    argv += ["-p", str(pid), "-d", str(int(options.timeout)), "-r", "200"]
    if options.native:
        argv.append("--native")
    if options.gil:
        argv.append("--gil")
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def broker_pid() -> int | None:
    """The RabbitMQ server's pid (the Erlang VM), when it runs on this machine."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    return int(entry.name)
            except OSError:
                continue
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU the worker used so far (from /proc), or None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
