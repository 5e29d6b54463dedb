"""On a real GPU box: what NVML tells trainwiz matches nvidia-smi. Skipped without a driver."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from trainwiz.hardware import GpuSampler, detect, visible_gpus


def _nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _nvml_works() or shutil.which("nvidia-smi") is None,
                       reason="needs an NVIDIA driver (NVML) and nvidia-smi"),
]


def nvidia_smi() -> list[tuple[int, str, str, int]]:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.strip().splitlines():
        index, uuid, name, total = (x.strip() for x in line.split(","))
        rows.append((int(index), uuid, name, int(total)))
    return rows


def test_detection_matches_nvidia_smi():
    det = detect()
    assert det.source == "nvml", det.message
    assert det.driver_version and det.cuda_driver_version
    ours = [(g.index, g.uuid, g.name, g.memory_total) for g in det.gpus]
    smi = nvidia_smi()
    assert [o[:3] for o in ours] == [s[:3] for s in smi]
    for (_, _, _, total), (_, _, _, total_mib) in zip(ours, smi):
        assert abs(total / (1 << 20) - total_mib) <= 1, (total, total_mib)
    for g in det.gpus:
        assert g.compute_capability and g.memory_used is not None and g.memory_free is not None
        assert g.error is None


def test_sampler_and_visible_devices_on_the_real_box():
    det = detect()
    with GpuSampler() as sampler:
        snap = sampler.sample()
    assert [g.uuid for g in snap.gpus] == [g.uuid for g in det.gpus]
    last = det.gpus[-1]
    assert [g.uuid for g in visible_gpus(det.gpus, last.uuid)] == [last.uuid]
    assert [g.index for g in visible_gpus(det.gpus, str(last.index), "PCI_BUS_ID")] == [last.index]


def test_links_match_nvidia_smi_and_the_gpu_is_timed():
    """The PCIe link nvidia-smi reports as the maximum, and a time estimate for this box (a GPU
    without data-sheet figures says so instead)."""
    from trainwiz.estimator.catalog import resolve_model
    from trainwiz.estimator.fit import estimate
    from trainwiz.estimator.types import TrainConfig
    from trainwiz.estimator.gpu_facts import gpu_facts
    from trainwiz.estimator.timing import time_hardware, time_plan

    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=pcie.link.gen.max,pcie.link.width.max",
         "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True,
        timeout=60).stdout
    det = detect()
    for g, line in zip(det.gpus, out.strip().splitlines()):
        gen, width = (x.strip() for x in line.split(","))
        if gen.isdigit():
            assert g.pcie_gen == int(gen)
        if width.isdigit():
            assert g.pcie_width == int(width)
        assert g.nvlink_links is None or g.nvlink_links >= 0
    est = estimate(resolve_model("gpt2"), TrainConfig(precision="bf16", seq_len=1024))
    time, _ = time_plan(est, time_hardware(det.gpus[:1]))
    assert time.estimated == (gpu_facts(det.gpus[0].name) is not None), time.reason
