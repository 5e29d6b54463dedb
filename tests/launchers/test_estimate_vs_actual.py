"""The estimate a run was launched with against the GPU memory its ranks really used.

The supervisor's own sampling code runs against the strict fake NVML (tests/hardware/fake_nvml),
which lists each process's memory as nvidia-ml-py does; the ranks are real processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardware import fake_nvml
from tests.hardware.fake_nvml import MiB
from trainwiz.hardware import GpuSampler
from trainwiz.launchers.rundir import RankStatus, RunStatus, save_status, write_json_atomic
from trainwiz.launchers.runinfo import memory_check, plan_estimate, run_report, save_estimate
from trainwiz.launchers.supervisor import Supervisor
from trainwiz.profiles import EstimateInputs, Profile

PLAN = Profile(name="g2", strategy="ddp", gpu_ids=[0, 1],
               estimate=EstimateInputs(model="gpt2", batch_size=2, seq_len=512,
                                       activation_checkpointing=True))


@pytest.fixture
def ranks():
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
             for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def _run_dir(tmp_path: Path, procs, *, device="cuda", simulate=None) -> Path:
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    write_json_atomic(run_dir / "command.json", {"argv": ["true"], "env": {}, "grace_s": 1})
    save_status(run_dir, RunStatus(id="r1", state="running", device=device, simulate=simulate,
                                   gpu_ids=[0, 1], num_processes=2, run_dir=str(run_dir),
                                   ranks=[RankStatus(rank=i, pid=p.pid, local_rank=i)
                                          for i, p in enumerate(procs)]))
    save_estimate(run_dir, plan_estimate(PLAN, 2))
    return run_dir


def _sampled(run_dir: Path, procs, used: list[int]) -> dict:
    """One sample by the supervisor, with the fake NVML listing each rank's memory (and a
    process of somebody else on GPU 0, which must not count)."""
    h100 = dict(name="NVIDIA H100 80GB HBM3", total=81559 * MiB, cc=[9, 0], limit_mw=700_000,
                util=90, temp=60, power_mw=400_000)
    box = {"gpus": [dict(h100, uuid=f"GPU-{i}", bus=f"00000000:{i + 1:02d}:00.0",
                         used=mem + (9000 * MiB if i == 0 else 0),
                         procs=[[p.pid, mem]] + ([[1, 9000 * MiB]] if i == 0 else []))
                    for i, (p, mem) in enumerate(zip(procs, used))]}
    sup = Supervisor(run_dir)
    sup.memory.gpu_sampler = GpuSampler(nvml_module=fake_nvml.build(box))
    sup.sample(force=True)
    sup._watch(final=True)
    return run_report(run_dir, sup.status)["memory"]


def _estimated(run_dir: Path) -> int:
    return json.loads((run_dir / "estimate.json").read_text())["per_gpu"]["total"]


def test_within_the_estimate(tmp_path, ranks):
    run_dir = _run_dir(tmp_path, ranks)
    est = _estimated(run_dir)
    mem = _sampled(run_dir, ranks, [int(est * 0.92), int(est * 1.09)])
    assert mem["comparison"] is True and mem["over"] is False and mem["likely"] == []
    seen = [(g["rank"], g["gpu"], g["measured_peak"], g["estimated_peak"]) for g in mem["per_gpu"]]
    assert seen == [(0, 0, int(est * 0.92), est), (1, 1, int(est * 1.09), est)]


def test_above_the_estimate_by_more_than_ten_percent_says_what_is_likely_different(
        tmp_path, ranks):
    run_dir = _run_dir(tmp_path, ranks)
    est = _estimated(run_dir)
    mem = _sampled(run_dir, ranks, [int(est * 0.95), int(est * 1.12)])
    assert mem["over"] is True
    assert [g["over"] for g in mem["per_gpu"]] == [False, True]
    likely = " ".join(mem["likely"])
    assert "batch 2 x seq 512" in likely and "activation checkpointing" in likely


def test_cli_runs_json_and_runs_show_report_it(tmp_path, ranks, run_cli, isolated_env):
    root = Path(isolated_env["XDG_STATE_HOME"]) / "trainwiz" / "runs"
    root.mkdir(parents=True)
    run_dir = _run_dir(root, ranks)
    est = _estimated(run_dir)
    _sampled(run_dir, ranks, [int(est * 0.95), int(est * 1.25)])
    listed = json.loads(run_cli("runs", "--json").stdout)
    assert listed[0]["memory"]["per_gpu"][1]["measured_peak"] == int(est * 1.25)
    shown = run_cli("runs", "show", "r1")
    assert shown.returncode == 0, shown.stderr
    assert "OVER" in shown.stdout and "likely different" in shown.stdout
    table = run_cli("runs", env={"COLUMNS": "120"})
    assert "MEMORY +25% over estimate" in table.stdout
    words = " ".join(table.stdout.split())  # the note below the table wraps to the terminal
    assert "rank 1 (GPU 1) peaked at" in words
    assert "likely: a bigger batch or longer sequences than planned" in words


@pytest.mark.parametrize("device,simulate,reason", [
    ("cpu", None, "CPU run: no GPU comparison"),
    ("cuda", "2xH100-80GB", "simulated box: no GPU comparison"),
])
def test_no_gpu_no_comparison(tmp_path, ranks, device, simulate, reason):
    run_dir = _run_dir(tmp_path, ranks, device=device, simulate=simulate)
    sup = Supervisor(run_dir)
    sup.sample(force=True)  # the supervisor's own sampler: none for CPU, the simulated box
    sup._watch(final=True)
    mem = run_report(run_dir, sup.status)["memory"]
    assert mem["comparison"] is False and mem["per_gpu"] == [] and reason in mem["reason"]
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    if device == "cpu":  # host memory of the ranks, and no GPU at all
        assert samples[-1]["gpus"] == [] and all(r["rss"] for r in samples[-1]["ranks"])
    else:  # the simulated box's readings are marked as such
        assert samples[-1]["simulated"] is True
        assert not any(r.get("gpu_memory") for r in samples[-1]["ranks"])


def test_no_estimate_no_comparison():
    mem = memory_check(None, {"peaks": [{"rank": 0, "gpu": 0, "gpu_peak": 5}]}, device="cuda",
                       simulated=False)
    assert mem["comparison"] is False and "no estimate" in mem["reason"]
