"""Fixed inputs for the snapshot tests: a recorded run directory and a few profile files.

The run directory is written with the launcher's own writers (status, samples) so the monitor
reads exactly what a real supervisor leaves behind; its values are fixed so screenshots are
stable (no clocks, no pids of this machine).
"""

from __future__ import annotations

from pathlib import Path

GIB = 1024**3
RUN_ID = "20260101-120000-snap"


def write_profiles(config_home: Path) -> Path:
    folder = Path(config_home) / "trainwiz" / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "llama-fsdp.yaml").write_text(
        "version: 1\nstrategy: fsdp\nmixed_precision: bf16\n"
        "fsdp:\n  sharding_strategy: FULL_SHARD\n  activation_checkpointing: true\n"
        "estimate:\n  model: llama-3-8b\n  batch_size: 2\n  seq_len: 4096\n")
    (folder / "cpu-ddp.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\n"
                                         "num_processes: 2\n")
    (folder / "broken.yaml").write_text("strategy: warp-drive\n")
    return folder


def write_failed_run(state_home: Path, running: bool = False) -> Path:
    """A 2-rank run on the simulated box whose rank 1 ran out of memory (or, with
    ``running``, the same run before it failed: both ranks still going)."""
    from trainwiz.launchers.rundir import (
        Failure,
        RankStatus,
        RunStatus,
        append_sample,
        save_status,
    )

    run_dir = Path(state_home) / "trainwiz" / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    (run_dir / "profile.yaml").write_text(
        "version: 1\nstrategy: ddp\nmixed_precision: bf16\n"
        "estimate:\n  model: llama-3-8b\n  batch_size: 1\n  seq_len: 2048\n")
    for i in range(40):
        used = [int((20 + i * 1.4) * GIB), int((21 + i * 1.5) * GIB)]
        append_sample(run_dir, {"t": 1767268800 + i, "gpus": [
            {"index": g, "name": "NVIDIA H100 80GB HBM3", "memory_used": used[g],
             "memory_total": 85520809984, "utilization": 90.0 + g} for g in range(2)],
            "ranks": [{"rank": r, "pid": 5000 + r, "rss": 2 * GIB} for r in range(2)]})
    for rank, lines in ((0, ["rank 0 step 1 loss 2.31", "rank 0 step 2 loss 2.07"]),
                        (1, ["rank 1 step 1 loss 2.29", "torch.OutOfMemoryError: CUDA out of "
                             "memory. Tried to allocate 1.96 GiB"])):
        folder = run_dir / "torchrun" / "snap" / "attempt_0" / str(rank)
        folder.mkdir(parents=True)
        (folder / "stdout.log").write_text("\n".join(lines) + "\n")
        (folder / "stderr.log").write_text("")
    if running:
        save_status(run_dir, RunStatus(
            id=RUN_ID, state="running", profile="llama-ddp", script="/work/train.py",
            started_at="2026-01-01T12:00:00+00:00", run_dir=str(run_dir), device="cuda",
            num_processes=2, simulate="2xH100-80GB",
            ranks=[RankStatus(rank=0, pid=5000, local_rank=0),
                   RankStatus(rank=1, pid=5001, local_rank=1)]))
        return run_dir
    save_status(run_dir, RunStatus(
        id=RUN_ID, state="failed", profile="llama-ddp", script="/work/train.py",
        args=["--epochs", "1"], started_at="2026-01-01T12:00:00+00:00",
        ended_at="2026-01-01T12:00:40+00:00", run_dir=str(run_dir), device="cuda",
        num_processes=2, simulate="2xH100-80GB",
        ranks=[RankStatus(rank=0, pid=5000, exit_code=-15, local_rank=0),
               RankStatus(rank=1, pid=5001, exit_code=1, local_rank=1)],
        failure=Failure(rank=1, exit_code=1, oom=True,
                        message="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                                "1.96 GiB")))
    return run_dir


def write_gpu_run(state_home: Path, ranks: int = 8, over_rank: int = 3, over: float = 1.2,
                  state: str = "running") -> Path:
    """A run on real (NVML) GPUs as the supervisor records it: each rank's own GPU memory,
    rank ``over_rank`` ``over`` times the estimate at its peak, progress read from rank 0."""
    from trainwiz.launchers.rundir import RankStatus, RunStatus, append_sample, save_status
    from trainwiz.launchers.runinfo import plan_estimate, save_estimate, write_json_atomic
    from trainwiz.profiles import EstimateInputs, Profile

    run_dir = Path(state_home) / "trainwiz" / "runs" / "20260101-130000-gpus"
    run_dir.mkdir(parents=True)
    profile = Profile(name="llama8", strategy="fsdp", gpu_ids=list(range(ranks)),
                      estimate=EstimateInputs(model="llama-3-8b", batch_size=2, seq_len=4096,
                                              activation_checkpointing=True))
    estimate = plan_estimate(profile, ranks)
    save_estimate(run_dir, estimate)
    (run_dir / "profile.yaml").write_text(
        f"version: 1\nstrategy: fsdp\ngpu_ids: {list(range(ranks))}\nestimate:\n"
        "  model: llama-3-8b\n  batch_size: 2\n  seq_len: 4096\n"
        "  activation_checkpointing: true\n")
    total = estimate["per_gpu"]["total"]

    def used(rank: int, i: int) -> int:
        return int(total * (0.55 + 0.45 * i / 30) * (over if rank == over_rank else 1))

    for i in range(31):
        append_sample(run_dir, {"t": 1767272400 + 2 * i, "gpus": [
            {"index": g, "name": "NVIDIA H100 80GB HBM3", "memory_used": used(g, i) + GIB,
             "memory_total": 85520809984, "utilization": 97.0, "temperature": 64,
             "power_draw": 640.0, "power_limit": 700.0} for g in range(ranks)],
            "ranks": [{"rank": r, "pid": 6000 + r, "rss": 3 * GIB, "gpu": r,
                       "gpu_memory": used(r, i)} for r in range(ranks)]})
    write_json_atomic(run_dir / "progress.json", {
        "progress": {"step": 120, "total": 400, "loss": 1.25, "steps_per_s": 0.5,
                     "steps_per_s_source": "bar", "tokens_per_s": 65536.0,
                     "tokens_per_s_source": "plan", "seconds_left": 560.0,
                     "losses": [[10 * k, 3.0 - 0.05 * k] for k in range(12)]},
        "peaks": [{"rank": r, "gpu": r, "gpu_peak": used(r, 30), "host_peak": 3 * GIB}
                  for r in range(ranks)], "simulated": False, "gpu_samples": True})
    for r in range(ranks):
        folder = run_dir / "torchrun" / "gpus" / "attempt_0" / str(r)
        folder.mkdir(parents=True)
        (folder / "stdout.log").write_text("".join(
            f"{{'loss': {3.0 - 0.05 * k:.3f}, 'epoch': {k / 40:.3f}}}\n" for k in range(12)))
        (folder / "stderr.log").write_text("")
    save_status(run_dir, RunStatus(
        id=run_dir.name, state=state, profile="llama8", script="/work/train.py",
        started_at="2026-01-01T13:00:00+00:00", run_dir=str(run_dir), device="cuda",
        gpu_ids=list(range(ranks)), num_processes=ranks,
        ranks=[RankStatus(rank=r, pid=6000 + r, local_rank=r,
                          exit_code=None if state == "running" else -15) for r in range(ranks)]))
    return run_dir
