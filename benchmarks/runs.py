"""Many runs and huge logs: ``python -m benchmarks.runs [--runs N]`` (from the repository root).

In a private state folder, writes N finished runs (default 3,000) and one run with a 200 MB
log, then measures:

* ``trainwiz runs`` as a fresh process (budget 1.0 s): it reads only the newest 50 statuses;
* ``list_runs()`` the first time and again (the app's Runs screen polls it every 2 s; budget
  for the re-read 0.25 s: only what changed is read again);
* peak memory of ``trainwiz logs RUN -n 5`` on the 200 MB log (budget 150 MiB: read from the
  end).

The exit code says whether every budget held.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_RUNS_S = 1.0
BUDGET_RELIST_S = 0.25
BUDGET_LOGS_MIB = 150


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runs")
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="trainwiz-bench-runs-"))
    os.environ["XDG_STATE_HOME"] = str(tmp)
    root = tmp / "trainwiz" / "runs"
    try:
        for i in range(args.runs):
            run_id = f"2026{i // 2800 + 1:02d}{i // 100 % 28 + 1:02d}-{i % 100:06d}-{i:04x}"
            (root / run_id).mkdir(parents=True)
            (root / run_id / "status.json").write_text(json.dumps({
                "id": run_id, "state": "succeeded", "profile": "p", "script": "/x/train.py",
                "started_at": "2026-01-01T00:00:00+00:00",
                "ranks": [{"rank": 0, "pid": 1, "exit_code": 0}]}))
        big = "20990101-000000-b1g0"
        folder = root / big / "torchrun" / "x" / "attempt_0" / "0"
        folder.mkdir(parents=True)
        (root / big / "status.json").write_text(json.dumps({"id": big, "state": "succeeded"}))
        with open(folder / "output.log", "wb") as fh:
            for _ in range(200):
                fh.write((b"step loss " + b"z" * 90 + b"\n") * 10_000)

        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trainwiz", "runs"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        t_runs = time.perf_counter() - t0

        from trainwiz.launchers.rundir import list_runs

        t0 = time.perf_counter()
        n = len(list_runs())
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        list_runs()
        t_again = time.perf_counter() - t0

        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, "-m", "trainwiz", "logs", big, "-n", "5"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        rss_mib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ok_runs, ok_again, ok_logs = (t_runs <= BUDGET_RUNS_S, t_again <= BUDGET_RELIST_S,
                                  rss_mib <= BUDGET_LOGS_MIB)
    print(f"trainwiz runs ({n} runs), fresh process  {t_runs:6.2f} s   budget {BUDGET_RUNS_S} s"
          f"  {'ok' if ok_runs else 'OVER'}")
    print(f"list_runs() first read                   {t_first:6.2f} s")
    print(f"list_runs() again (Runs screen poll)     {t_again:6.2f} s   budget "
          f"{BUDGET_RELIST_S} s  {'ok' if ok_again else 'OVER'}")
    print(f"trainwiz logs -n 5, 200 MB log, peak RSS {rss_mib:6.0f} MiB budget "
          f"{BUDGET_LOGS_MIB} MiB  {'ok' if ok_logs else 'OVER'}")
    return 0 if ok_runs and ok_again and ok_logs else 1


if __name__ == "__main__":
    raise SystemExit(main())
