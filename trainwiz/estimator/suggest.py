"""Suggestions: the smallest changes to a config that make it fit, ranked.

Each candidate is one change a user would make (a flag, a smaller micro-batch with gradient
accumulation keeping the global batch, a sharding strategy, more GPUs), priced by a fresh
estimate. Candidates that fit come first, cheapest in training speed first; if no single change
fits, pairs of the most effective ones are tried.
"""

from __future__ import annotations

from trainwiz.errors import UsageError
from trainwiz.estimator.memory import estimate, usable_memory
from trainwiz.estimator.types import Estimate, ModelSpec, Suggestion, TrainConfig
from trainwiz.units import format_bytes

# Rough cost in training speed, used to rank changes that fit (lower is better).
_COST = {
    "fused_optimizer": 0, "loop": 0, "precision": 1, "sharding": 2, "strategy": 2, "attention": 2,
    "batch_size": 3, "activation_checkpointing": 4, "optimizer": 5, "num_gpus": 6,
    "offload_params": 9, "method": 8,
}

_WITH_METHOD = ("lora_rank", "lora_targets", "activation_checkpointing", "precision")

# A change of method is not a setting of the same training: say so once, beside the suggestions.
METHOD_NOTE = ("LoRA and QLoRA train small adapters on a frozen (QLoRA: 4-bit) copy of the model "
               "instead of every weight; whether that quality is enough for your task is your "
               "call.")


def _candidates(model: ModelSpec, config: TrainConfig, available_gpus: int | None):
    c = config
    if model.has_architecture and c.loop == "custom":
        yield {"loop": "trainer"}, LOOP_NOTE
    if c.optimizer == "adamw" and not c.fused_optimizer:
        yield {"fused_optimizer": True}, "fused AdamW (no foreach temporaries)"
    if c.precision == "fp32":
        yield {"precision": "bf16"}, "bf16 mixed precision"
    if model.has_architecture and not c.activation_checkpointing:
        yield {"activation_checkpointing": True}, "activation checkpointing (~30% slower)"
    if model.has_architecture and c.attention == "eager":
        yield {"attention": "sdpa"}, "SDPA attention (no s×s scores kept)"
    if c.batch_size > 1:  # largest micro-batch first: the first that fits is the one to take
        yield [({"batch_size": b, "grad_accum": c.grad_accum * c.batch_size // b},
                f"micro-batch {b} × {c.grad_accum * c.batch_size // b} accumulation steps (same global batch)")
               for b in _smaller_batches(c.batch_size)]
    if c.strategy in ("single", "ddp") and c.num_gpus > 1:
        yield {"strategy": "fsdp", "sharding": "FULL_SHARD"}, "FSDP FULL_SHARD"
    if c.strategy == "fsdp" and c.sharding != "FULL_SHARD" and c.num_gpus > 1:
        yield {"sharding": "FULL_SHARD", "num_nodes": 1}, "FULL_SHARD instead of " + c.sharding
    if c.optimizer in ("adamw", "adafactor"):
        yield {"optimizer": "adamw8bit"}, "8-bit AdamW (bitsandbytes)"
    more_gpus = []  # fewest GPUs first; on a known box, at most one step beyond it
    for n in (2, 4, 8, 16, 32, 64):
        if n <= c.num_gpus:
            continue
        change = {"num_gpus": n}
        if c.strategy in ("single", "ddp"):
            change.update(strategy="fsdp", sharding="FULL_SHARD")
        note = f"{n} GPUs with FSDP FULL_SHARD"
        if available_gpus is not None and n > available_gpus:
            more_gpus.append((change, note + f" (this box has {available_gpus})"))
            break
        more_gpus.append((change, note))
    if more_gpus:
        yield more_gpus
    if c.method == "full" and model.has_architecture:
        yield {"method": "lora", "lora_rank": 16, "lora_targets": "all-linear"}, \
            "change of method: LoRA r16 all-linear (frozen base, adapters train)"
    if c.method == "lora":
        yield {"method": "qlora", "activation_checkpointing": True,
               **({} if c.precision in ("fp16", "bf16") else {"precision": "bf16"})}, \
            "change of method: QLoRA (the same adapters on a 4-bit NF4 base, checkpointing)"
    if c.method == "full" and model.has_architecture:
        qlora = {"method": "qlora", "lora_rank": 16, "lora_targets": "all-linear",
                 "activation_checkpointing": True}
        if c.precision not in ("fp16", "bf16"):
            qlora["precision"] = "bf16"  # QLoRA computes in bf16
        yield qlora, "change of method: QLoRA r16 all-linear (4-bit NF4 base + LoRA, checkpointing)"
    if c.strategy == "fsdp" and not c.offload_params:
        yield {"offload_params": True}, "CPU offload (much slower)"
    elif c.strategy in ("single", "ddp"):
        yield ({"strategy": "fsdp", "sharding": "FULL_SHARD", "offload_params": True},
               "FSDP with CPU offload (much slower)")


LOOP_NOTE = "drop the outputs before backward (or use the HF Trainer)"


def _note(note: str, change: dict, saved: int) -> str:
    """A suggestion that changes the loop says what it saves against the current plan: the
    whole change's saving (the loop's and its partner's together), at the end of the line."""
    if change.get("loop") == "trainer":
        return f"{note}: saves {format_bytes(max(saved, 0))}"
    return note


def _smaller_batches(b: int):
    seen = set()
    for div in (2, 4, 8, 16, 32, 64):
        nb = b // div
        if nb >= 1 and b % nb == 0 and nb not in seen:
            seen.add(nb)
            yield nb


def suggest(model: ModelSpec, config: TrainConfig, current: Estimate, gpu_memory: int,
            gpu_free: int | None, available_gpus: int | None, limit: int = 6) -> list[Suggestion]:
    usable = usable_memory(gpu_memory, gpu_free)
    base_total = current.per_gpu.total
    results: dict = {}

    priced: dict = {}

    def price(change: dict) -> Estimate | None:
        key = _key(change)
        if key not in priced:
            try:
                priced[key] = estimate(model, config.with_changes(**change), gpu_memory, gpu_free)
            except UsageError:
                priced[key] = None
        return priced[key]

    def climb(ladder, base: dict | None = None):
        """Walk a ladder of alternatives (mildest first) on top of ``base``: the first rung
        that fits, else the rung with the lowest total; None when nothing helps."""
        best = None
        for change, note in ladder:
            if base and set(change) & set(base[0]):
                return None
            full = {**base[0], **change} if base else change
            est = price(full)
            if est is None or est.per_gpu.total >= base_total:
                continue
            label = f"{base[1]} + {note}" if base else note
            if best is None or est.per_gpu.total < best[2].per_gpu.total:
                best = (full, label, est)
            if usable is not None and est.per_gpu.total <= usable:
                return (full, label, est)
        return best

    ladders, singles = [], []
    for candidate in _candidates(model, config, available_gpus):
        ladder = candidate if isinstance(candidate, list) else [candidate]
        found = climb(ladder)
        if found is not None:  # only changes that help on their own are combined below
            ladders.append(ladder)
            singles.append(found)
    for change, note, est in singles:
        results[_key(change)] = (change, note, est)
    def practical(change: dict) -> bool:  # no CPU offload, no more GPUs than the box has, and
        # the same training (a change of method does not stop the search for one that keeps it)
        too_many = available_gpus is not None and change.get("num_gpus", 0) > available_gpus
        return not change.get("offload_params") and not too_many and "method" not in change

    if usable is not None and not any(e.per_gpu.total <= usable and practical(c) for c, _, e in singles):
        # nothing fits alone: add a second change to each of the two most effective ones (the
        # second one's ladder is walked again, so it takes the mildest rung that fits there)
        fitting = 0
        firsts = [t for t in singles if practical(t[0]) and t[2].per_gpu.total > usable]
        for first in sorted(firsts, key=lambda t: t[2].per_gpu.total)[:2]:
            for ladder in ladders:
                ladder = [(c, n) for c, n in ladder if practical(c)]
                found = climb(ladder, base=(first[0], first[1])) if ladder else None
                if found is not None and found[2].per_gpu.total < first[2].per_gpu.total \
                        and _key(found[0]) not in results:
                    results[_key(found[0])] = found
                    fitting += found[2].per_gpu.total <= usable
            if fitting >= 3:
                break

    def rank(item):
        change, _, est = item
        fits = usable is not None and est.per_gpu.total <= usable
        keys = [k for k in change if k != "grad_accum"]
        if "method" in change:  # the method's own settings come with it
            keys = [k for k in keys if k not in _WITH_METHOD]
        cost = sum(_COST.get(k, 5) for k in keys)
        if "num_gpus" in change:  # each doubling of the GPU count costs more; beyond the box, more
            cost += change["num_gpus"] / config.num_gpus
            if available_gpus is not None and change["num_gpus"] > available_gpus:
                cost += 10
        if "batch_size" in change:
            cost += config.batch_size / change["batch_size"] / 2
        # the same training first: a change of method comes after every change that keeps it
        return (not fits, "method" in change, cost, est.per_gpu.total)

    ranked = sorted(results.values(), key=rank)
    fitting = [t for t in ranked if usable is not None and t[2].per_gpu.total <= usable]
    if fitting and all("method" in t[0] for t in fitting):
        # only another method fits: still show what comes closest with this one
        ranked = fitting + [t for t in ranked if t not in fitting]
    elif fitting:
        ranked = fitting  # only what helps
    out = []
    for change, note, est in ranked[:limit]:
        fits = usable is not None and est.per_gpu.total <= usable
        out.append(Suggestion(change=change, total=est.per_gpu.total,
                              note=_note(note, change, base_total - est.per_gpu.total), fits=fits,
                              slower=bool(change.get("offload_params")),
                              method_change="method" in change,
                              not_estimated=est.not_estimated))
    return out


def _key(change: dict) -> tuple:
    return tuple(sorted(change.items()))
