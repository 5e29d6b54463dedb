"""GPU discovery: what hardware is here (NVML), or what a simulated box would have.

Public API (stable; others import these names from ``trainwiz.hardware``)::

    detect(simulate=None) -> Detection             probe once (NVML, or a simulated box)
    parse_simulate(spec) -> list[GpuInfo]          "8xH100-80GB", "2x4090", "box.yaml"
    PRESETS                                        preset key -> GpuPreset (real card figures)
    host_info() -> HostInfo                        CPU count, RAM total/available
    visible_gpus(gpus, cuda_visible_devices)       what a run with CUDA_VISIBLE_DEVICES will see
    GpuSampler(simulate=None).sample(pids_by_gpu)  -> GpuSnapshot, for the monitor

Importing this package is cheap: its modules are pure Python, and ``pynvml`` (and ``psutil``)
are imported only when NVML (or the host) is actually probed.
"""

from __future__ import annotations

from trainwiz.hardware.host import host_info
from trainwiz.hardware.presets import PRESETS, GpuPreset
from trainwiz.hardware.probe import detect
from trainwiz.hardware.sampler import GpuSampler
from trainwiz.hardware.simulated import parse_simulate
from trainwiz.hardware.types import (
    Detection,
    GpuInfo,
    GpuProcess,
    GpuSnapshot,
    HostInfo,
    MigDevice,
)
from trainwiz.hardware.visible import cuda_order, visible_gpus

__all__ = [
    "PRESETS",
    "Detection",
    "GpuInfo",
    "GpuPreset",
    "GpuProcess",
    "GpuSampler",
    "GpuSnapshot",
    "HostInfo",
    "MigDevice",
    "cuda_order",
    "detect",
    "host_info",
    "parse_simulate",
    "visible_gpus",
]
