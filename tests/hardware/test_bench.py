"""The sampler benchmark runs and reports a cost for each case."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_bench_reports_cost_per_sample():
    out = subprocess.run([sys.executable, "-m", "benchmarks.hardware", "--samples", "5",
                          "--simulate", "2xL4", "--json"], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    results = json.loads(out)
    cases = [r["case"] for r in results]
    assert cases[0] == "simulated 2xL4" and "2 live rank processes" in cases[1]
    assert all(r["wall_us"] > 0 for r in results[:2])
    assert results[2]["case"].startswith("NVML")
