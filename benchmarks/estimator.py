"""``python -m benchmarks.estimator``: how long an estimate plus its suggestions and their times
takes. Exit status 1 when the slowest median is over the budget.

The app re-estimates on every keystroke of the wizard, so one estimate with suggestions must stay
well under the 5 ms budget a live form can afford. Prints the median and the worst over repeated
calls for a spread of configs, including ones that do not fit (those price the most candidate
changes).
"""

from __future__ import annotations

import statistics
import time

from trainwiz.estimator.catalog import resolve_model

from trainwiz.estimator.fit import estimate

from trainwiz.estimator.types import TrainConfig
from trainwiz.estimator.timing import time_hardware, time_plan
from trainwiz.hardware import parse_simulate

GiB = 1 << 30
BUDGET_MS = 5.0

CONFIGS = [
    ("gpt2, single, fits", "gpt2", TrainConfig(batch_size=8, seq_len=1024), 24),
    ("llama-3-8b, FSDP x8, fits", "llama-3-8b",
     TrainConfig(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=1, seq_len=4096), 80),
    ("llama-3-8b, FSDP x8, does not fit", "llama-3-8b",
     TrainConfig(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=8, seq_len=4096), 80),
    ("llama-3-8b, DDP x2 fp32, does not fit", "llama-3-8b",
     TrainConfig(strategy="ddp", num_gpus=2, batch_size=2, seq_len=2048), 24),
    ("llama-3-70b, FSDP x8, does not fit", "llama-3-70b",
     TrainConfig(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=4, seq_len=4096), 80),
]


def run(repeats: int = 200) -> list[tuple[str, float, float, int]]:
    results = []
    for label, name, config, gib in CONFIGS:
        model = resolve_model(name)
        # the GPUs the wizard would time it on (a box of the config's size)
        hardware = time_hardware(parse_simulate(f"{config.num_gpus}x{'H100-80GB' if gib == 80 else '4090'}"))
        time_plan(estimate(model, config, gpu_memory=gib * GiB), hardware)  # warm caches
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            est = estimate(model, config, gpu_memory=gib * GiB)
            time_plan(est, hardware, tokens=10**9)
            times.append((time.perf_counter() - t0) * 1000)
        results.append((label, statistics.median(times), max(times), len(est.suggestions)))
    return results


def main() -> int:
    print(f"estimate + suggestions + time, {200} calls each (budget {BUDGET_MS:.0f} ms):")
    worst_median = 0.0
    for label, median, worst, n in run():
        worst_median = max(worst_median, median)
        print(f"  {label:42s} median {median:6.2f} ms   max {worst:6.2f} ms   {n} suggestions")
    print(f"slowest median: {worst_median:.2f} ms = {worst_median / BUDGET_MS:.2f} x the budget")
    return 0 if worst_median <= BUDGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
