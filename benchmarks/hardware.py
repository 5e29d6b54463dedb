"""How much the GPU sampler costs per sample: ``python -m benchmarks.hardware``.

The monitor samples twice a second; this prints the wall and CPU time of one ``sample()`` and
what that is as a share of one CPU core at 2 Hz, for a simulated box (alone, and with one live
process per GPU as under a CPU-rank run) and, where a driver is present, for the real GPUs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _measure(fn, samples: int) -> dict:
    fn()  # warm: caches filled, NVML opened, psutil primed
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(samples):
        fn()
    wall = (time.perf_counter() - wall0) / samples
    cpu = (time.process_time() - cpu0) / samples
    return {"wall_us": wall * 1e6, "cpu_us": cpu * 1e6, "core_pct_at_2hz": cpu * 2 * 100}


def run(spec: str, samples: int) -> list[dict]:
    from trainwiz.hardware import GpuSampler

    results = []
    sampler = GpuSampler(spec)
    n = len(sampler.sample().gpus)
    results.append({"case": f"simulated {spec}", **_measure(sampler.sample, samples)})

    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                 stdin=subprocess.DEVNULL) for _ in range(n)]
    try:
        pids = {i: [p.pid] for i, p in enumerate(sleepers)}
        results.append({"case": f"simulated {spec}, {n} live rank processes (psutil RSS)",
                        **_measure(lambda: sampler.sample(pids), samples)})
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()

    real = GpuSampler()
    if real.source == "nvml":
        count = len(real.sample().gpus)
        results.append({"case": f"NVML, {count} real GPU(s)", **_measure(real.sample, samples)})
        real.close()
        from trainwiz.hardware import detect

        t0 = time.perf_counter()
        detect()
        results.append({"case": "NVML detect() once (init, all fields, topology, shutdown)",
                        "wall_us": (time.perf_counter() - t0) * 1e6, "cpu_us": None,
                        "core_pct_at_2hz": None})
    else:
        results.append({"case": "NVML", "skipped": real.message})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hardware",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", default="8xH100-80GB", metavar="SPEC",
                        help="simulated box to sample (default 8xH100-80GB)")
    parser.add_argument("--samples", type=int, default=200, help="samples per case (default 200)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.simulate, max(1, args.samples))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"GpuSampler.sample() cost, mean of {args.samples} samples "
          "(the monitor samples at 2 Hz):")
    for r in results:
        if "skipped" in r:
            print(f"  {r['case']}: not measured ({r['skipped']})")
            continue
        line = f"  {r['case']}: {r['wall_us']:,.0f} µs wall"
        if r["cpu_us"] is not None:
            line += (f", {r['cpu_us']:,.0f} µs CPU"
                     f" -> {r['core_pct_at_2hz']:.3f}% of one core at 2 Hz")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
