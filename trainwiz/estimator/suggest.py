"""Suggestions: the smallest changes to a config that make it fit, ranked.

Each candidate is one change a user would make (a flag, a smaller micro-batch with gradient
accumulation keeping the global batch, a sharding strategy, more GPUs), priced by a fresh
estimate. Candidates that fit come first, cheapest in training speed first; if no single change
fits, pairs of the most effective ones are tried.
"""

from __future__ import annotations

from trainwiz.estimator.types import Estimate, ModelSpec, Suggestion, TrainConfig

# Rough cost in training speed, used to rank changes that fit (lower is better).
_COST = {
    "fused_optimizer": 0, "precision": 1, "sharding": 2, "strategy": 2, "attention": 2,
    "batch_size": 3, "activation_checkpointing": 4, "optimizer": 5, "num_gpus": 6,
    "offload_params": 9,
}


def _candidates(model: ModelSpec, config: TrainConfig, available_gpus: int | None):
    c = config
    if c.optimizer == "adamw" and not c.fused_optimizer:
        yield {"fused_optimizer": True}, "fused AdamW (torch.optim.AdamW(fused=True)): no foreach temporaries"
    if c.precision == "fp32":
        yield {"precision": "bf16"}, "bf16 mixed precision (fp32 master weights kept)"
    if model.has_architecture and not c.activation_checkpointing:
        yield {"activation_checkpointing": True}, "activation checkpointing: recompute each block in backward (~30% slower)"
    if model.has_architecture and c.attention == "eager":
        yield {"attention": "sdpa"}, "SDPA attention: no s×s score matrices kept"
    if c.batch_size > 1:  # largest micro-batch first: the first that fits is the one to take
        yield [({"batch_size": b, "grad_accum": c.grad_accum * c.batch_size // b},
                f"micro-batch {b} × {c.grad_accum * c.batch_size // b} accumulation steps: same global batch")
               for b in _smaller_batches(c.batch_size)]
    if c.strategy in ("single", "ddp") and c.num_gpus > 1:
        yield {"strategy": "fsdp", "sharding": "FULL_SHARD"}, "FSDP FULL_SHARD: shard weights, gradients and optimizer state"
    if c.strategy == "fsdp" and c.sharding in ("SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD") and c.num_gpus > 1:
        yield {"sharding": "FULL_SHARD", "num_nodes": 1}, "FULL_SHARD instead of " + c.sharding + ": free each block after its forward"
    if c.optimizer in ("adamw", "adafactor"):
        yield {"optimizer": "adamw8bit"}, "8-bit AdamW (bitsandbytes): 2 bytes of state per parameter instead of 8"
    more_gpus = []  # fewest GPUs first
    for n in (2, 4, 8, 16, 32, 64):
        if n > c.num_gpus:
            change = {"num_gpus": n}
            if c.strategy == "single":
                change.update(strategy="fsdp", sharding="FULL_SHARD")
            elif c.strategy == "ddp":
                change.update(strategy="fsdp", sharding="FULL_SHARD")
            note = f"{n} GPUs with FSDP FULL_SHARD" if change.get("strategy") == "fsdp" or c.strategy == "fsdp" else f"{n} GPUs"
            if available_gpus is not None and n > available_gpus:
                note += f" (this box has {available_gpus})"
            more_gpus.append((change, note))
    if more_gpus:
        yield more_gpus
    if c.strategy == "fsdp" and not c.offload_params:
        yield {"offload_params": True}, "CPU offload of parameters, gradients and optimizer state (much slower)"
    elif c.strategy in ("single", "ddp"):
        yield ({"strategy": "fsdp", "sharding": "FULL_SHARD", "offload_params": True},
               "FSDP with CPU offload (much slower)")


def _smaller_batches(b: int):
    seen = set()
    for div in (2, 4, 8, 16, 32, 64):
        nb = b // div
        if nb >= 1 and b % nb == 0 and nb not in seen:
            seen.add(nb)
            yield nb


def suggest(model: ModelSpec, config: TrainConfig, current: Estimate, gpu_memory: int,
            gpu_free: int | None, available_gpus: int | None, limit: int = 6) -> list[Suggestion]:
    from trainwiz.errors import UsageError
    from trainwiz.estimator.model import estimate, usable_memory

    usable = usable_memory(gpu_memory, gpu_free)
    base_total = current.per_gpu.total
    results: dict = {}

    def price(change: dict) -> Estimate | None:
        try:
            return estimate(model, config.with_changes(**change), gpu_memory, gpu_free, suggestions=False)
        except UsageError:
            return None

    singles = []
    for candidate in _candidates(model, config, available_gpus):
        # a list is a ladder of alternatives (smaller batches, more GPUs), mildest first: keep
        # the first rung that fits, or the lowest total if none does
        ladder = candidate if isinstance(candidate, list) else [candidate]
        best = None
        for change, note in ladder:
            est = price(change)
            if est is None or est.per_gpu.total >= base_total:
                continue
            if best is None or est.per_gpu.total < best[2].per_gpu.total:
                best = (change, note, est)
            if usable is not None and est.per_gpu.total <= usable:
                best = (change, note, est)
                break
        if best is not None:
            singles.append(best)
    for change, note, est in singles:
        results[_key(change)] = (change, note, est)
    if usable is not None and not any(e.per_gpu.total <= usable for _, _, e in singles):
        ranked = sorted(singles, key=lambda t: t[2].per_gpu.total)[:4]
        for i, (c1, n1, _) in enumerate(ranked):
            for c2, n2, _ in ranked[i + 1:]:
                if set(c1) & set(c2):
                    continue
                change = {**c1, **c2}
                est = price(change)
                if est is not None and est.per_gpu.total < base_total:
                    results[_key(change)] = (change, f"{n1}; and {n2}", est)

    def rank(item):
        change, _, est = item
        fits = usable is not None and est.per_gpu.total <= usable
        cost = sum(_COST.get(k, 5) for k in change if k != "grad_accum")
        return (not fits, cost, est.per_gpu.total)

    ranked = sorted(results.values(), key=rank)
    if usable is not None and any(e.per_gpu.total <= usable for _, _, e in ranked):
        ranked = [t for t in ranked if t[2].per_gpu.total <= usable]  # only what helps
    out = []
    for change, note, est in ranked[:limit]:
        fits = usable is not None and est.per_gpu.total <= usable
        out.append(Suggestion(change=change, total=est.per_gpu.total, note=note, fits=fits,
                              slower=bool(change.get("offload_params"))))
    return out


def _key(change: dict) -> tuple:
    return tuple(sorted(change.items()))
