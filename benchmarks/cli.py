"""How fast the command line answers, cold: ``python -m benchmarks.cli [--runs 5]``.

Each command runs in a fresh interpreter (as a user types it); the median wall time of the runs
is compared with its budget, and the exit code says whether every budget held:

- ``trainwiz --help``: 0.15 s
- ``trainwiz estimate llama-3-8b``: 0.25 s (about 0.2 s on the 2-core development machine)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BUDGETS = (
    (("--help",), 0.15),
    (("estimate", "llama-3-8b", "--simulate", "2xH100-80GB"), 0.25),
)


def _time(args: tuple[str, ...]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainwiz", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args(argv)
    ok = True
    for args, budget in BUDGETS:
        _time(args)  # warm the page cache, as a second invocation would be
        median = statistics.median(_time(args) for _ in range(opts.runs))
        held = median <= budget
        ok &= held
        print(f"trainwiz {' '.join(args):<48} median {median:6.3f} s  budget {budget:.2f} s  "
              f"{'ok' if held else 'OVER BUDGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
