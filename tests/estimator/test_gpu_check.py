"""`python -m validation.gpu_check`, the parts that need no GPU: its case list, what it compares,
the table it writes, and what it does on a box without CUDA."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from validation import gpu_check
from validation.gpu_check import CASES, LOOPS, estimate_for, markdown, rows, runnable, with_estimates


def test_cases_cover_both_loops_bf16_pure_ddp_and_fsdp():
    assert {c.precision for c in CASES} == {"fp32", "bf16", "bf16-pure"}
    assert {c.strategy for c in CASES} == {"single", "ddp", "fsdp"}
    assert any(c.strategy == "fsdp" and c.precision == "bf16-pure" for c in CASES)
    assert {c.attention for c in CASES} == {"sdpa", "eager"}
    assert LOOPS == ("custom", "trainer")
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_case_is_something_the_estimator_prices(case):
    custom, trainer = (estimate_for(case, loop) for loop in LOOPS)
    assert custom.config.loop == "custom" and trainer.config.loop == "trainer"
    assert custom.per_gpu.peak_allocated > trainer.per_gpu.peak_allocated  # the logits
    # sized to fit one 80 GiB GPU with room to spare, so an OOM means a wrong estimate
    assert custom.per_gpu.total < 60 * 2**30


def test_a_one_gpu_box_runs_the_single_cases_and_lists_the_rest():
    todo, skipped = runnable(CASES, 1)
    assert todo and all(c.num_gpus == 1 for c in todo)
    assert {c.strategy for c in skipped} == {"ddp", "fsdp"}
    assert runnable(CASES, 8) == (CASES, [])


def test_the_table_compares_each_loop_with_its_estimate():
    case = gpu_check.CASES_BY_NAME["llama-3.2-1b-pure-b2-s2048"]
    est = {loop: estimate_for(case, loop).per_gpu for loop in LOOPS}
    # a made-up measurement: 10% above the custom estimate, equal to the trainer one
    measured = {"gpu": "test", "loops": {
        "custom": {"max_memory_allocated": int(est["custom"].peak_allocated * 1.1),
                   "max_memory_reserved": 0, "device_used": est["custom"].total,
                   "peak_phase": "backward", "peak_by_phase": {}},
        "trainer": {"max_memory_allocated": est["trainer"].peak_allocated,
                    "max_memory_reserved": 0, "device_used": 2 * est["trainer"].total,
                    "peak_phase": "backward", "peak_by_phase": {}}}}
    results = {"device": "test", "gpu_count": 1, "cases": {case.name: with_estimates(case, measured)},
               "skipped": {"fsdp-x": "needs 2 GPUs, this box has 1"}}
    by_name = {r["name"]: r for r in rows(json.loads(json.dumps(results)))}
    assert by_name[f"{case.name} [custom]"]["error"] == pytest.approx(-1 / 11, abs=1e-6)
    assert by_name[f"{case.name} [trainer]"]["error"] == 0
    assert by_name[f"{case.name} [custom]"]["total_error"] == 0
    assert by_name[f"{case.name} [trainer]"]["total_error"] == pytest.approx(-0.5)
    text = markdown(results)
    assert f"| {case.name} [custom] |" in text and "-9.1%" in text
    assert "1/2 within 5% of max_memory_allocated" in text
    assert "fsdp-x (needs 2 GPUs, this box has 1)" in text


def test_without_measurements_the_table_says_so():
    assert "Not measured yet" in markdown({})


def test_without_cuda_it_measures_and_writes_nothing(tmp_path):
    pytest.importorskip("torch")
    out, md = tmp_path / "g.json", tmp_path / "g.md"
    proc = subprocess.run([sys.executable, "-m", "validation.gpu_check", "--out", str(out),
                           "--markdown", str(md)], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": "",
                               "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU here" in proc.stdout
    assert not out.exists() and not md.exists()
    bad = subprocess.run([sys.executable, "-m", "validation.gpu_check", "--case", "nope"],
                         cwd=REPO_ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert bad.returncode == 2 and "unknown case(s): nope" in bad.stderr
