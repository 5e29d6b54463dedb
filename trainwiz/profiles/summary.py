"""One line that says what a profile runs: the CLI's `profiles list`/`show` and the app's
Profiles screen print the same words (plain text; the callers decide how it is shown)."""

from __future__ import annotations

from pathlib import Path

from trainwiz.profiles.schema import Profile


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def profile_summary(profile: Profile, *, details: bool = False) -> str:
    """``"fsdp2 FULL_SHARD, 8 GPUs × 4 Slurm nodes (gpu), mixed precision: bf16"``; with
    ``details`` also what it was planned for, the model and batch, and the script (for a view
    that has no columns of its own for them)."""
    if profile.strategy == "fsdp":
        f = profile.fsdp
        parts = [f"fsdp{f.version} {f.sharding_strategy}" + (" +offload" if f.offload_params
                                                              else "")]
    else:
        parts = [profile.strategy]
    per = profile.processes_per_machine
    if profile.device == "cpu":
        where = _count(per, "CPU rank") if per else "? CPU ranks"
    elif profile.gpu_ids is not None:
        where = "GPU" + ("s " if len(profile.gpu_ids) != 1 else " ") + \
            ",".join(map(str, profile.gpu_ids))
        if profile.num_processes is not None and profile.num_processes != len(profile.gpu_ids):
            n = profile.num_processes
            where += f" ({n} process{'' if n == 1 else 'es'})"
    elif per is not None:  # num_processes, or single: one process on one GPU
        where = _count(per, "GPU")
    else:
        where = "all GPUs"
    if profile.scheduler == "slurm":  # Slurm's nodes, on its partition
        part = profile.slurm.partition if profile.slurm and profile.slurm.partition else None
        where += f" × {_count(profile.machines, 'Slurm node')}" + (f" ({part})" if part else "")
    elif profile.num_machines > 1:
        where += f" × {profile.num_machines} machines"
    parts += [where, f"mixed precision: {profile.mixed_precision}"]
    est = profile.estimate
    if est is not None and est.method != "full":
        lora = est.lora_options
        method = f"{'QLoRA' if est.method == 'qlora' else 'LoRA'} r{lora.rank} {lora.targets}"
        if est.method == "qlora":
            q = est.quantization_options
            method += (f" ({q.type}{' double-quant' if q.double_quant else ''}, "
                       f"{q.compute_dtype} compute)")
        parts.append(method)
    if details:
        if profile.hardware is not None:  # what the plan was made for
            hw = profile.hardware
            parts.append(f"planned for {hw.gpu.removeprefix('NVIDIA ')}"
                         + (" (simulated)" if hw.simulated else ""))
        if est is not None:
            parts.append(f"{est.model} b{est.batch_size} s{est.seq_len}")
        if profile.script:
            parts.append(Path(profile.script).name)
    return ", ".join(parts)
