"""Probing a box once (:func:`detect`) and sampling it repeatedly for the monitor (:class:`GpuSampler`)."""

from __future__ import annotations

import time

from trainwiz.hardware.types import Detection, GpuSnapshot


_NO_GPU = "NVML is working but reports no GPU on this box."


def _planning_message(spec: str, n: int) -> str:
    return (f"Planning mode: simulated box {spec} ({n} GPU{'s' if n != 1 else ''}); "
            "no real GPU is used.")


def detect(simulate: str | None = None, *, topology: bool = True, nvml_module=None) -> Detection:
    """What hardware is here. ``simulate`` (a spec) selects the simulated backend and raises
    :class:`~trainwiz.errors.TrainwizError` when it is bad; otherwise NVML is probed, and a box
    without NVML gives ``source="none"``, no GPUs and a one-line ``message`` (never an exception)."""
    from trainwiz.hardware.host import host_info

    if simulate is not None:
        from trainwiz.hardware.simulated import parse_box

        gpus, host_over = parse_box(simulate)
        host = host_info()
        if host_over:
            from dataclasses import replace

            host = replace(host, **host_over)
        return Detection(gpus=tuple(gpus), host=host, source="simulated",
                         message=_planning_message(simulate.strip(), len(gpus)),
                         extra={"simulate": simulate.strip()})

    from trainwiz.hardware.nvml import NvmlBackend, NvmlUnavailable

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
    message = None if gpus else _NO_GPU
    return Detection(gpus=gpus, host=host_info(), source="nvml", message=message,
                     driver_version=driver, cuda_driver_version=cuda, extra=extra)


class GpuSampler:
    """Timestamped snapshots of every GPU for the monitor; cheap enough for 2 Hz on 8 GPUs.

    NVML is opened once and slow fields are cached. Under simulation, ``pids_by_gpu`` (simulated
    GPU index -> pids of the CPU ranks "on" it) turns each GPU's memory into the box's baseline
    plus those processes' real RSS, listed in ``processes``. Without NVML or simulation the
    snapshots are empty and ``message`` says why. Not thread-safe: use it from one worker.
    """

    def __init__(self, simulate: str | None = None, *, nvml_module=None) -> None:
        self.simulate = simulate
        self.message: str | None = None
        self._sim = None
        self._nvml = None
        if simulate is not None:
            from trainwiz.hardware.simulated import SimulatedBackend

            self._sim = SimulatedBackend(simulate)
            self.source = "simulated"
            self.message = _planning_message(simulate.strip(), len(self._sim.gpus))
            return
        from trainwiz.hardware.nvml import NvmlBackend, NvmlUnavailable

        try:
            self._nvml = NvmlBackend(nvml_module).open()
            self.source = "nvml"
            if not self._nvml.count:
                self.message = _NO_GPU
        except NvmlUnavailable as exc:
            self.source = "none"
            self.message = str(exc)

    def sample(self, pids_by_gpu: dict[int, list[int]] | None = None) -> GpuSnapshot:
        now = time.time()
        if self._sim is not None:
            return GpuSnapshot(timestamp=now, gpus=self._sim.sample(pids_by_gpu))
        if self._nvml is not None:
            return GpuSnapshot(timestamp=now, gpus=self._nvml.read_all())
        return GpuSnapshot(timestamp=now, gpus=())

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    def __enter__(self) -> GpuSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: NVML init is reference counted
        try:
            self.close()
        except Exception:
            pass
