"""Sampling a box repeatedly for the monitor (:class:`GpuSampler`); :mod:`probe` probes it once (:func:`detect`)."""

from __future__ import annotations

import time

from trainwiz.hardware.nvml import NvmlBackend, NvmlUnavailable
from trainwiz.hardware.simulated import SimulatedBackend
from trainwiz.hardware.probe import NO_GPU, planning_message
from trainwiz.hardware.types import GpuSnapshot


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
            self._sim = SimulatedBackend(simulate)
            self.source = "simulated"
            self.message = planning_message(simulate.strip(), len(self._sim.gpus))
            return
        try:
            self._nvml = NvmlBackend(nvml_module).open()
            self.source = "nvml"
            if not self._nvml.count:
                self.message = NO_GPU
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
