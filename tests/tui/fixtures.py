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
