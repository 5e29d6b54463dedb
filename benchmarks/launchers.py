"""Measure what launching costs: ``python -m benchmarks.launchers [--python PY] [--seconds N]``.

Runs the CPU DDP example (2 gloo ranks) under a real supervisor in a private state dir and
prints: time for ``launch`` to return (preflight included), time until both ranks run, the
supervisor's CPU use and memory while the run trains, and how long ``stop`` takes to leave
nothing alive. Needs torch in the interpreter given (default: this one).
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
    args = parser.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="trainwiz-bench-")
    os.environ["XDG_STATE_HOME"] = tmp
    import psutil

    from trainwiz.launchers.api import launch, stop_run
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
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if final.state == "stopped" and not left else 1


if __name__ == "__main__":
    raise SystemExit(main())
