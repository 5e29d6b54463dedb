"""From a profile to the estimator's inputs. Pure (the estimator's types are plain dataclasses)."""

from __future__ import annotations

from trainwiz.estimator.timing import TimeEstimate, TimedSuggestion, time_hardware, time_plan
from trainwiz.estimator.types import TrainConfig
from trainwiz.profiles.schema import Profile
from trainwiz.units import parse_rate

_PRECISION = {"no": "fp32", "fp16": "fp16", "bf16": "bf16", "fp8": "bf16", "bf16-pure": "bf16-pure"}


def mixed_precision_for(precision: str) -> str:
    """The profile's ``mixed_precision`` for an estimator precision (fp32 is "no")."""
    return {"fp32": "no"}.get(precision, precision)


def estimate_request(profile: Profile, num_gpus: int | None = None):
    """``(model, TrainConfig)`` for :func:`trainwiz.estimator.estimate`, or None when the profile
    holds no estimate inputs.

    ``model`` is the profile's model string (catalog name, HF folder / config.json path, or
    ``params:N``). ``num_gpus``: GPUs on this machine, used when the profile leaves the count open
    (one rank per GPU). The TrainConfig's ``num_gpus`` counts ranks over all machines.
    """
    est = profile.estimate
    if est is None:
        return None
    per = profile.processes_per_machine
    if per is None:
        per = num_gpus if num_gpus else 1
    total = per * profile.machines
    strategy = profile.strategy
    if strategy == "ddp" and total == 1:
        strategy = "single"
    fsdp = profile.fsdp if strategy == "fsdp" else None
    cfg = TrainConfig(
        strategy=strategy,
        num_gpus=total,
        sharding=fsdp.sharding_strategy if fsdp else "FULL_SHARD",
        num_nodes=profile.machines,
        precision=_PRECISION[profile.mixed_precision],
        optimizer=est.optimizer,
        fused_optimizer=bool(est.fused_optimizer and est.optimizer == "adamw"),
        batch_size=est.batch_size,
        seq_len=est.seq_len,
        grad_accum=est.grad_accum,
        activation_checkpointing=bool(est.activation_checkpointing
                                      or (fsdp is not None and fsdp.activation_checkpointing)),
        offload_params=bool(fsdp is not None and fsdp.offload_params),
        attention=est.attention,
        loop=est.loop,
        method=est.method,
    )
    if est.method != "full":
        lora = est.lora_options
        cfg = cfg.with_changes(lora_rank=lora.rank, lora_targets=lora.targets,
                               lora_dropout=float(lora.dropout))
    if est.method == "qlora":
        cfg = cfg.with_changes(double_quant=est.quantization_options.double_quant)
    return est.model, cfg


def time_request(profile: Profile) -> dict:
    """What the time estimate takes from a profile beyond the TrainConfig:
    ``{"tokens" or "steps": N, "network": bytes/s or None}`` (keys only for what is set), for
    :func:`trainwiz.estimator.timing.time_hardware` (``network``) and ``time_plan`` (the rest)."""
    est = profile.estimate
    out: dict = {}
    if est is None:
        return out
    if est.tokens is not None:
        out["tokens"] = est.tokens
    elif est.steps is not None:
        out["steps"] = est.steps
    if est.network is not None:
        out["network"] = parse_rate(est.network, "key 'estimate.network'")
    return out


def profile_time(profile: Profile, est, gpus, topology: list | None = None
                 ) -> tuple[TimeEstimate, tuple[TimedSuggestion, ...]]:
    """The time of ``est`` (the estimate of ``profile``'s plan) on ``gpus`` (GpuInfo objects, or
    the dicts a run directory keeps), with the profile's training length and network: what the
    wizard's panel shows while a plan is edited, and the estimated tokens/s the monitor sets
    beside the measured ones."""
    request = time_request(profile)
    hardware = time_hardware(gpus, topology=topology, network=request.pop("network", None))
    return time_plan(est, hardware, available_gpus=len(gpus) or None, **request)


def estimate_notes(profile: Profile) -> list[str]:
    """Caveats to show next to an estimate made from this profile."""
    notes = []
    if profile.mixed_precision == "fp8":
        notes.append("fp8 is estimated as bf16 mixed precision (an upper bound: fp8 keeps some "
                     "activations smaller)")
    if profile.mixed_precision == "bf16-pure":
        notes.append("bf16-pure: the script loads the model in bf16 (torch_dtype=torch.bfloat16) "
                     "and trains it without autocast; accelerate is told mixed_precision no")
    if profile.device == "cpu":
        notes.append("the estimate is for CUDA GPUs; this profile runs CPU ranks")
    return notes


def model_argument(model: str) -> tuple[str | None, int | None]:
    """Split the profile's model string: ``params:N`` is a bare parameter count."""
    if model.startswith("params:"):
        text = model.split(":", 1)[1].strip().replace("_", "")
        try:
            return None, int(float(text))
        except ValueError:
            return model, None
    return model, None
