"""GPU discovery: what hardware is here (NVML), or what a simulated box would have.

Public API (stable; others import these names from ``trainwiz.hardware``)::

    detect(simulate=None) -> Detection             probe once (NVML, or a simulated box)
    parse_simulate(spec) -> list[GpuInfo]          "8xH100-80GB", "2x4090", "box.yaml"
    PRESETS                                        preset key -> GpuPreset (real card figures)
    host_info() -> HostInfo                        CPU count, RAM total/available
    visible_gpus(gpus, cuda_visible_devices)       what a run with CUDA_VISIBLE_DEVICES will see
    GpuSampler(simulate=None).sample(pids_by_gpu)  -> GpuSnapshot, for the monitor

Importing this package is cheap: submodules load on first use, and ``pynvml`` is imported only
when NVML is actually probed.
"""

from __future__ import annotations

import importlib

from trainwiz.hardware.types import (
    Detection,
    GpuInfo,
    GpuProcess,
    GpuSnapshot,
    HostInfo,
    MigDevice,
)

_LAZY = {
    "detect": "trainwiz.hardware.probe",
    "GpuSampler": "trainwiz.hardware.sampler",
    "parse_simulate": "trainwiz.hardware.simulated",
    "PRESETS": "trainwiz.hardware.presets",
    "GpuPreset": "trainwiz.hardware.presets",
    "host_info": "trainwiz.hardware.host",
    "visible_gpus": "trainwiz.hardware.visible",
    "cuda_order": "trainwiz.hardware.visible",
}

__all__ = ["Detection", "GpuInfo", "GpuProcess", "GpuSnapshot", "HostInfo", "MigDevice", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainwiz.hardware' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
