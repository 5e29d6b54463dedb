"""The NVML backend against a stand-in pynvml that raises nvidia-ml-py's real exceptions."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pynvml as real
import pytest

from tests.hardware import fake_nvml
from tests.hardware.fake_nvml import GiB, MiB, sample_box
from trainwiz.hardware import GpuSampler, detect, visible_gpus
from trainwiz.hardware import nvml as nvml_backend


@pytest.fixture
def box(monkeypatch):
    """Install a stand-in for ``pynvml`` describing ``sample_box()``; returns the module."""
    nv = fake_nvml.build(sample_box())
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    return nv


def _backend_calls() -> set[str]:
    """Every pynvml function the backend names (``_v2`` variants it builds included)."""
    source = (Path(nvml_backend.__file__)).read_text()
    names = set(re.findall(r'"(nvml[A-Z][A-Za-z0-9_]*)"', source))
    if 'base + "_v2"' in source:  # the process lists fall back to their _v2 variants
        names |= {n + "_v2" for n in names if n.endswith("RunningProcesses")}
    return names


def test_stand_in_matches_the_real_module_surface():
    nv = fake_nvml.build(sample_box())
    called = _backend_calls()
    assert "nvmlDeviceGetGraphicsRunningProcesses_v2" in called
    for name in called:
        assert hasattr(real, name), f"the backend uses {name}, which nvidia-ml-py lacks"
    functions = {name for name in called if callable(getattr(real, name))}
    assert functions <= set(fake_nvml.SURFACE), functions - set(fake_nvml.SURFACE)
    for name in fake_nvml.SURFACE:
        ours = inspect.signature(getattr(nv, name))
        theirs = inspect.signature(getattr(real, name))
        assert [p for p in ours.parameters] == [p for p in theirs.parameters], name
    assert nv.NVMLError_NotSupported is real.NVMLError_NotSupported


def test_healthy_gpu_is_read_in_the_units_of_the_contract(box):
    det = detect()
    assert det.source == "nvml" and det.message is None
    assert det.driver_version == "550.54.15" and det.cuda_driver_version == "12.4"
    g = det.gpus[0]
    assert (g.index, g.name, g.uuid) == (0, "NVIDIA H100 80GB HBM3",
                                         "GPU-aaaaaaaa-1111-2222-3333-000000000000")
    # used as nvidia-smi shows it (without the driver's reservation); free is what can be had
    assert g.memory_total == 81559 * MiB and g.memory_used == 30 * GiB
    assert g.memory_free == 81559 * MiB - 30 * GiB - 527 * MiB
    assert (g.utilization, g.temperature, g.power_draw, g.power_limit) == (87.0, 64.0, 512.345, 700.0)
    assert g.compute_capability == "9.0" and g.supports_bf16
    assert g.pci_bus_id == "00000000:18:00.0"
    # compute and graphics lists are merged by pid; a process's larger figure wins
    assert [(p.pid, p.memory_used) for p in g.processes] == [
        (1111, 20 * GiB), (2222, 10 * GiB), (3333, None)]
    assert g.error is None


def test_unsupported_and_forbidden_fields_become_null(box):
    g = detect().gpus[1]
    assert g.temperature is None and g.power_draw is None and g.power_limit is None
    assert g.utilization is None
    assert g.processes == ()  # NoPermission on the process list: none shown, no exception
    assert g.memory_total == 81559 * MiB and g.name == "NVIDIA H100 80GB HBM3"
    record = g.to_json()
    assert record["temperature"] is None and record["power_draw"] is None
    assert g.error is None


def test_lost_gpu_is_listed_and_flagged(box):
    det = detect()
    assert len(det.gpus) == 4
    g = det.gpus[2]
    assert g.error == "GPU is lost"
    assert g.memory_total is None and g.memory_used is None and g.uuid is None
    assert g.to_json()["error"] == "GPU is lost"


def test_mig_gpu_reports_its_instances_and_survives_a_failing_process_list(box):
    g = detect().gpus[3]
    assert g.mig is True
    assert [m.uuid for m in g.mig_devices] == ["MIG-11111111-2222-3333-4444-555555555555",
                                               "MIG-66666666-2222-3333-4444-555555555555"]
    assert g.mig_devices[0].memory_total == 40192 * MiB
    assert g.processes == ()
    assert g.utilization is None  # NVML: NotSupported on a GPU in MIG mode
    # what a run pinned to one MIG instance will see
    seen = visible_gpus(detect().gpus, "MIG-11111111-2222-3333-4444-555555555555")
    assert len(seen) == 1 and seen[0].index == 3
    assert seen[0].memory_total == 40192 * MiB and "MIG 3g.40gb" in seen[0].name


def test_topology_names_nvlink_and_pcie_pairs(box):
    links = {tuple(x["gpus"]): x["link"] for x in detect().extra["topology"]}
    assert links[(0, 1)] == "NVLINK"
    assert links[(0, 3)] == "SYS"
    assert (2, 3) not in links and (0, 2) not in links  # NVML can't tell about a lost GPU


def test_topology_comes_from_where_the_gpus_sit(monkeypatch):
    box = sample_box()
    healthy = box["gpus"][0]
    box["nvlink"] = []
    box["gpus"] = [dict(healthy, switch="A", numa=0), dict(healthy, switch="A", numa=0),
                   dict(healthy, switch="B", numa=0), dict(healthy, switch="C", numa=1)]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.build(box))
    links = {tuple(x["gpus"]): x["link"] for x in detect().extra["topology"]}
    assert links == {(0, 1): "PIX", (0, 2): "NODE", (1, 2): "NODE",
                     (0, 3): "SYS", (1, 3): "SYS", (2, 3): "SYS"}


def test_detect_balances_init_and_shutdown(box):
    detect()
    assert box.calls["nvmlInit"] == box.calls["nvmlShutdown"] == 1


@pytest.mark.parametrize("code, words", [
    ("LIBRARY_NOT_FOUND", "No NVIDIA driver found"),
    ("DRIVER_NOT_LOADED", "driver is not loaded"),
    ("NO_PERMISSION", "No permission"),
    ("UNKNOWN", "NVML could not start"),
])
def test_no_nvml_is_planning_mode_not_an_error(monkeypatch, code, words):
    nv = fake_nvml.build({"init_error": code, "gpus": []})
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    det = detect()
    assert det.source == "none" and det.gpus == ()
    assert words in det.message and "\n" not in det.message
    assert "--simulate" in det.message
    sampler = GpuSampler()
    assert sampler.source == "none" and sampler.sample().gpus == ()


def test_missing_nvidia_ml_py_is_planning_mode(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    det = detect()
    assert det.source == "none" and "not installed" in det.message


def test_box_without_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.build({"gpus": []}))
    det = detect()
    assert det.source == "nvml" and det.gpus == () and "no GPU" in det.message
    sampler = GpuSampler()
    assert sampler.source == "nvml" and "no GPU" in sampler.message
    assert sampler.sample().gpus == ()


def test_a_gpu_whose_handle_cannot_be_opened_is_still_listed(monkeypatch):
    b = sample_box()
    b["gpus"][1]["errors"] = {"handle": "GPU_IS_LOST"}
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.build(b))
    det = detect()
    assert [g.index for g in det.gpus] == [0, 1, 2, 3]
    assert det.gpus[1].error == "GPU is lost" and det.gpus[1].memory_total is None
    assert det.gpus[0].memory_used == 30 * GiB


def test_sampler_caches_slow_fields_and_keeps_nvml_open(box):
    with GpuSampler() as sampler:
        snaps = [sampler.sample() for _ in range(5)]
        assert box.calls["nvmlInit"] == 1
    assert box.calls["nvmlShutdown"] == 1
    assert all(len(s.gpus) == 4 for s in snaps)
    assert snaps[0].timestamp <= snaps[-1].timestamp
    # name/uuid/cc are read once per healthy GPU, not per sample; the lost one is retried
    healthy = 3
    assert box.calls["nvmlDeviceGetCudaComputeCapability"] <= healthy + 5
    assert box.calls["nvmlDeviceGetMemoryInfo"] >= 4 * 5  # used/free move, so they are re-read


def test_sampler_sees_memory_move(monkeypatch):
    b = sample_box()
    nv = fake_nvml.build(b)
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    with GpuSampler() as sampler:
        first = sampler.sample().gpus[0].memory_used
        b["gpus"][0]["used"] = 70 * GiB
        second = sampler.sample().gpus[0]
    assert first == 30 * GiB and second.memory_used == 70 * GiB
    assert second.memory_free == 81559 * MiB - 70 * GiB - 527 * MiB


def test_process_list_falls_back_when_the_driver_is_older_than_nvidia_ml_py(monkeypatch):
    b = sample_box()
    b["gpus"][0]["errors"] = {"nvmlDeviceGetComputeRunningProcesses": "LIBRARY_MISMATCH"}
    nv = fake_nvml.build(b)
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    with GpuSampler() as sampler:
        for _ in range(3):
            g = sampler.sample().gpus[0]
            assert [p.pid for p in g.processes] == [1111, 2222, 3333]
    # the driver's age is box-wide: the unversioned call is tried once, then _v2 for every GPU
    assert nv.calls["nvmlDeviceGetComputeRunningProcesses"] == 1
    assert nv.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 4 * 3


def test_other_process_list_failures_do_not_switch_variants(box):
    with GpuSampler() as sampler:
        sampler.sample()
        sampler.sample()
    assert box.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 0


def test_older_driver_without_memory_v2_reports_v1(monkeypatch):
    b = sample_box()
    b["no_memory_v2"] = True
    nv = fake_nvml.build(b)
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    with GpuSampler() as sampler:
        for _ in range(3):
            g = sampler.sample().gpus[0]
    assert g.memory_used == 30 * GiB + 527 * MiB  # v1 counts the reservation as used
    assert g.memory_free == 81559 * MiB - 30 * GiB - 527 * MiB


def test_links_for_the_time_estimate(box):
    gpus = detect().gpus
    h100, a100 = gpus[0], gpus[3]
    assert (h100.pcie_gen, h100.pcie_width, h100.nvlink_links) == (5, 16, 18)
    assert (a100.pcie_gen, a100.pcie_width, a100.nvlink_links) == (4, 16, 10)  # 2 of 12 down
    assert gpus[2].nvlink_links is None and gpus[2].pcie_gen is None  # lost: unknown, not 0


def test_a_gpu_without_nvlink_has_none_up_and_an_unreadable_one_is_unknown(monkeypatch):
    card = dict(name="NVIDIA GeForce RTX 4090", total=24564 * MiB, cc=[8, 9], limit_mw=450_000,
                used=0, util=0, temp=30, power_mw=20_000, bus="00000000:01:00.0", pcie=[4, 16])
    nv = fake_nvml.build({"gpus": [
        dict(card, uuid="GPU-1"),
        dict(card, uuid="GPU-2", bus="00000000:02:00.0",
             errors={"nvmlDeviceGetNvLinkState": "NO_PERMISSION"})]})
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    gpus = detect().gpus
    assert gpus[0].nvlink_links == 0 and (gpus[0].pcie_gen, gpus[0].pcie_width) == (4, 16)
    assert gpus[1].nvlink_links is None
