"""The memory samples of a running run, taken by the supervisor every SAMPLE_S.

Each sample holds the ranks' host memory (RSS) and, on a GPU box, the GPUs' readings and each
rank's own GPU memory (NVML per process; a simulated box's readings are marked simulated). It is
handed to ``on_sample`` (the run's progress watcher) and appended to ``samples.jsonl``. A sampler
error or a full disk drops a sample, never the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil

from trainwiz.hardware import GpuSampler
from trainwiz.launchers.records import GpuReading, RankReading, RankStatus, Sample
from trainwiz.launchers.rundir import append_sample
from trainwiz.launchers.runinfo import rank_gpu_memory
from trainwiz.launchers.statuswriter import StatusWriter

log = logging.getLogger("trainwiz.supervisor")

SAMPLE_S = 2.0


class MemorySampler:
    """Samples the memory of a run's live ranks; the GPU sampler is made on first use (none
    for CPU ranks, or where NVML cannot start)."""

    def __init__(self, run_dir: Path, writer: StatusWriter,
                 on_sample: Callable[[Sample], None]) -> None:
        self.run_dir = run_dir
        self.writer = writer  # the run's status (device, box, GPU ids) and its disk-full note
        self.on_sample = on_sample
        self.gpu_sampler: GpuSampler | None = None
        self._gpu_failed = False
        self._last = 0.0

    def sample(self, live: list[RankStatus], force: bool = False) -> None:
        """One sample of the ranks in ``live`` (at most every SAMPLE_S unless ``force``)."""
        now = time.time()
        if not force and now - self._last < SAMPLE_S:
            return
        self._last = now
        status = self.writer.status
        ranks = []
        for r in live:
            try:
                ranks.append(RankReading(rank=r.rank, pid=r.pid,
                                         rss=psutil.Process(r.pid).memory_info().rss))
            except psutil.Error:
                pass
        gpus: list[GpuReading] = []
        sampler = self._gpus()
        if sampler is not None:
            try:
                snap = sampler.sample(self._pids_by_gpu(live))
                gpus = [GpuReading(index=g.index, name=g.name, memory_used=g.memory_used,
                                   memory_total=g.memory_total, utilization=g.utilization,
                                   temperature=g.temperature, power_draw=g.power_draw,
                                   power_limit=g.power_limit)
                        for g in snap.gpus]
                if not status.simulate:  # each rank's own GPU memory (NVML per process)
                    on_gpu = rank_gpu_memory(snap.gpus, {r.pid: r.rank for r in live})
                    ranks = [replace(r, gpu=on_gpu[r.rank][0], gpu_memory=on_gpu[r.rank][1])
                             if r.rank in on_gpu else r for r in ranks]
            except Exception as exc:  # a sampler error must never end the run
                log.warning("GPU sampling failed: %s", exc)
                self.gpu_sampler, self._gpu_failed = None, True
        if not (ranks or gpus):
            return
        # a simulated box's readings are made up: said so wherever they are read
        sample = Sample(t=round(now, 3), gpus=tuple(gpus), ranks=tuple(ranks),
                        simulated=bool(gpus) and bool(status.simulate))
        self.on_sample(sample)
        try:
            append_sample(self.run_dir, sample)
        except OSError as exc:  # a full disk: the sample is dropped, the run goes on
            self.writer.sample_lost(exc)

    def _gpus(self) -> GpuSampler | None:
        if self.gpu_sampler is not None or self._gpu_failed:
            return self.gpu_sampler
        status = self.writer.status
        if status.device == "cpu":  # CPU ranks: their host memory, never a GPU's
            self._gpu_failed = True
            return None
        try:
            self.gpu_sampler = GpuSampler(status.simulate)
        except Exception as exc:
            log.info("no GPU sampler: %s", exc)
            self._gpu_failed = True
        return self.gpu_sampler

    def _pids_by_gpu(self, ranks: list[RankStatus]) -> dict[int, list[int]]:
        gpu_ids = self.writer.status.gpu_ids
        n = len(gpu_ids) if gpu_ids else None
        out: dict[int, list[int]] = {}
        for r in ranks:
            local = r.local_rank if r.local_rank is not None else r.rank
            if gpu_ids:
                gpu = gpu_ids[local % n]
            else:
                gpu = local
            out.setdefault(gpu, []).append(r.pid)
        return out
