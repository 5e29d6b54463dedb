"""Probing a box once: what GPUs and host are here, or what a simulated box would have."""

from __future__ import annotations

from dataclasses import replace

from trainwiz.hardware.host import host_info
from trainwiz.hardware.nvml import NvmlBackend, NvmlUnavailable
from trainwiz.hardware.simulated import parse_box
from trainwiz.hardware.types import Detection


NO_GPU = "NVML is working but reports no GPU on this box."


def planning_message(spec: str, n: int) -> str:
    return (f"Planning mode: simulated box {spec} ({n} GPU{'s' if n != 1 else ''}); "
            "no real GPU is used.")


def detect(simulate: str | None = None, *, topology: bool = True, nvml_module=None) -> Detection:
    """What hardware is here. ``simulate`` (a spec) selects the simulated backend and raises
    :class:`~trainwiz.errors.TrainwizError` when it is bad; otherwise NVML is probed, and a box
    without NVML gives ``source="none"``, no GPUs and a one-line ``message`` (never an exception)."""
    if simulate is not None:
        gpus, host_over = parse_box(simulate)
        host = host_info()
        if host_over:
            host = replace(host, **host_over)
        return Detection(gpus=tuple(gpus), host=host, source="simulated",
                         message=planning_message(simulate.strip(), len(gpus)),
                         extra={"simulate": simulate.strip()})

    backend = NvmlBackend(nvml_module)
    try:
        backend.open()
    except NvmlUnavailable as exc:
        return Detection(gpus=(), host=host_info(), source="none", message=str(exc))
    try:
        gpus = backend.read_all()
        driver, cuda = backend.driver_versions()
        extra = {}
        if topology and len(gpus) > 1:
            extra["topology"] = backend.topology()
    finally:
        backend.close()
    message = None if gpus else NO_GPU
    return Detection(gpus=gpus, host=host_info(), source="nvml", message=message,
                     driver_version=driver, cuda_driver_version=cuda, extra=extra)
