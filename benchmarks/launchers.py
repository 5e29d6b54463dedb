"""Measure what launching and watching cost: ``python -m benchmarks.launchers [--python PY]
[--seconds N] [--ranks N]``.

Runs the CPU DDP example (2 gloo ranks) under a real supervisor in a private state dir and
prints: time for ``launch`` to return (preflight included), time until both ranks run, the
supervisor's CPU use and memory while the run trains, and how long ``stop`` takes to leave
nothing alive. Then 8 ranks that each log 10 lines a second (rank 0 also appends to
metrics.jsonl), watched by the full-screen monitor (headless, in its own process): the
monitor's and the supervisor's CPU use. The exit code is 1 when the monitor uses 1% of a core
or more (the budget), or a run did not behave. Needs torch in the interpreter given.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.launchers")
    parser.add_argument("--python", default=sys.executable, help="training interpreter")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to watch the supervisor")
    parser.add_argument("--ranks", type=int, default=8, help="ranks of the logging run the "
                        "monitor watches (0: skip that part)")
    parser.add_argument("--monitor-seconds", type=float, default=30.0,
                        help="how long to measure the monitor")
    args = parser.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="trainwiz-bench-")
    os.environ["XDG_STATE_HOME"] = tmp
    import psutil

    from trainwiz.launchers.local import launch, stop_run
    from trainwiz.launchers.rundir import read_status
    from trainwiz.profiles import Profile

    example = Path(__file__).resolve().parent.parent / "examples" / "train_ddp.py"
    profile = Profile(name="bench", device="cpu", num_processes=2, python=args.python)
    t0 = time.perf_counter()
    handle = launch(profile, str(example), ["--steps", "100000", "--sleep", "0.2"])
    t_launch = time.perf_counter() - t0
    while True:
        st = read_status(handle.run_dir)
        if st.state == "running" and len(st.ranks) == 2:
            break
        if st.finished:
            print(f"run ended early: {st.state} {st.failure}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    t_running = time.perf_counter() - t0
    sup = psutil.Process(st.supervisor_pid)
    c0, w0 = sum(sup.cpu_times()[:2]), time.perf_counter()
    time.sleep(args.seconds)
    c1, w1 = sum(sup.cpu_times()[:2]), time.perf_counter()
    rss = sup.memory_info().rss
    pids = [r.pid for r in st.ranks] + [st.launcher_pid, st.supervisor_pid]
    t1 = time.perf_counter()
    final = stop_run(handle.run_dir)
    t_stop = time.perf_counter() - t1
    left = [p for p in pids if psutil.pid_exists(p)]
    print(f"launch returned in        {t_launch:6.2f} s (preflight, run dir, supervisor up)")
    print(f"both ranks running after  {t_running:6.2f} s")
    print(f"supervisor CPU            {100 * (c1 - c0) / (w1 - w0):6.2f} % of one core "
          f"over {w1 - w0:.0f} s; RSS {rss / 2 ** 20:.0f} MiB")
    print(f"stop took                 {t_stop:6.2f} s -> {final.state}; processes left: {left}")
    ok = final.state == "stopped" and not left
    if args.ranks:
        ok = _monitor_cost(example, args) and ok
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


MONITOR = """
import sys
from trainwiz.tui.monitor_app import MonitorApp
app = MonitorApp(sys.argv[1])
app.call_later(lambda: app.set_timer(float(sys.argv[2]), app.exit))
app.run(headless=True, size=(80, 24))
"""
BUDGET = 1.0  # % of one core


def _monitor_cost(example: Path, args) -> bool:
    """The monitor's CPU while it watches ``args.ranks`` ranks that log 10 lines a second."""
    import subprocess

    import psutil

    from trainwiz.launchers.local import launch, stop_run
    from trainwiz.launchers.rundir import read_status
    from trainwiz.profiles import Profile

    profile = Profile(name="bench-log", device="cpu", num_processes=args.ranks, python=args.python)
    handle = launch(profile, str(example), ["--steps", "1000000", "--sleep", "0.1"])
    deadline = time.monotonic() + 180
    while True:
        st = read_status(handle.run_dir)
        if st.state == "running" and len(st.ranks) == args.ranks:
            break
        if st.finished or time.monotonic() > deadline:
            print(f"logging run did not start: {st.state} {st.failure}", file=sys.stderr)
            stop_run(handle.run_dir)
            return False
        time.sleep(0.2)
    time.sleep(3)  # every rank is logging
    warmup = 8.0
    mon = subprocess.Popen([sys.executable, "-c", MONITOR, str(handle.run_dir),
                            str(warmup + args.monitor_seconds + 5)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    proc = psutil.Process(mon.pid)
    sup = psutil.Process(st.supervisor_pid)
    time.sleep(warmup)  # imports and the first frame are the start-up benchmark's, not this one
    m0, s0, w0 = sum(proc.cpu_times()[:2]), sum(sup.cpu_times()[:2]), time.perf_counter()
    time.sleep(args.monitor_seconds)
    m1, s1, w1 = sum(proc.cpu_times()[:2]), sum(sup.cpu_times()[:2]), time.perf_counter()
    log_bytes = sum(p.stat().st_size for p in Path(handle.run_dir).glob("torchrun/*/*/*/*.log"))
    mon.wait(timeout=60)
    err = mon.stderr.read().decode(errors="replace")
    stop_run(handle.run_dir)
    monitor = 100 * (m1 - m0) / (w1 - w0)
    supervisor = 100 * (s1 - s0) / (w1 - w0)
    held = monitor < BUDGET and mon.returncode == 0
    print(f"monitor CPU, {args.ranks} ranks logging  {monitor:6.2f} % of one core over "
          f"{w1 - w0:.0f} s (budget {BUDGET:.0f} %: {'held' if held else 'NOT HELD'})")
    print(f"supervisor CPU, same run      {supervisor:6.2f} % of one core "
          f"(samples, rank tracking, progress from rank 0's log)")
    print(f"rank logs written             {log_bytes / 1024:6.0f} KiB")
    if mon.returncode != 0:
        print(f"the monitor exited with {mon.returncode}: {err[-2000:]}", file=sys.stderr)
    return held


if __name__ == "__main__":
    raise SystemExit(main())
