"""The rule of thumb trainwiz is measured against: `accelerate estimate-memory`.

accelerate sizes the bare model (AutoModel: no task head; parameters and buffers, fp32) and
multiplies: training with Adam in fp32 = 4x the model (weights, gradients, two Adam states);
with fp16/bf16 mixed precision the peak is 2x (its "optimizer" term). No activations, no
sharding, no temporaries. This module reproduces its numbers exactly, for the `--table` view and
for the comparison in the validation report.
"""

from __future__ import annotations

from dataclasses import replace

from trainwiz.estimator.types import ModelSpec


def _buffer_bytes(model: ModelSpec) -> int:
    if model.family == "bert":  # position_ids and token_type_ids, int64
        return 2 * (model.max_position or 512) * 8
    if model.family in ("llama", "mistral", "qwen2", "gemma", "gemma2", "phi3"):
        size = 2 * (model.head_dim // 2) * 4  # rotary inv_freq and original_inv_freq, fp32
        return size + (4 if model.family in ("gemma", "gemma2") else 0)  # embed_scale
    return 0


def bare_model(model: ModelSpec) -> ModelSpec:
    """The same model without its task head (what AutoModel builds)."""
    if not model.has_architecture or model.head == "base":
        return model
    h, V = model.hidden_size, model.vocab_size
    params = model.params
    if model.family == "bert":
        if model.head == "masked_lm":
            params -= (h * h + h) + 2 * h + V + (0 if model.tie_embeddings else V * h + V)
        elif model.head == "seq_cls":
            params -= h * model.num_labels + model.num_labels
            return replace(model, params=params, head="base")
        params += h * h + h  # BertModel keeps its pooler
    elif model.head in ("causal_lm", "masked_lm"):
        params -= 0 if model.tie_embeddings else V * h
    elif model.head == "seq_cls":
        params -= h * model.num_labels
    return replace(model, params=params, head="base")


def model_size(model: ModelSpec) -> tuple[int, int | None]:
    """(total bytes, largest layer bytes) as accelerate's calculate_maximum_sizes gives them;
    the largest layer is None (unknown) for a bare parameter count, whose layers are unknown."""
    bare = bare_model(model)
    total = 4 * bare.params + _buffer_bytes(bare)
    if not bare.has_architecture:
        return total, None
    embed = 4 * (bare.embedding_params or 0)
    if bare.family == "bert":  # the embeddings module also holds the id buffers
        embed += _buffer_bytes(bare)
    elif bare.family == "gpt2":  # wte and wpe are separate top-level modules
        embed = 4 * bare.vocab_size * bare.hidden_size
    elif bare.family in ("gemma", "gemma2"):
        embed += 4
    return total, max(embed, 4 * (bare.layer_params or 0))


def training_usage(size: int, dtype: str) -> dict:
    """accelerate's estimate_training_usage: model, gradients, optimizer, step (bytes)."""
    fp16 = size // 2
    if dtype == "float32":
        return {"model": size, "gradients": size, "optimizer": 2 * size, "step": 4 * size}
    if dtype in ("float16", "bfloat16"):
        return {"model": size, "gradients": size + fp16, "optimizer": 2 * size, "step": 2 * size}
    return {"model": -1, "gradients": -1, "optimizer": -1, "step": -1}


def table_rows(model: ModelSpec, dtypes=("float32", "float16", "int8", "int4")) -> list[dict]:
    total, largest = model_size(model)
    rows = []
    for dtype in dtypes:
        div = {"float32": 1, "float16": 2, "bfloat16": 2, "int8": 4, "int4": 8}[dtype]
        usage = training_usage(total, dtype)
        peak = max(usage.values())
        rows.append({"dtype": dtype, "largest_layer": None if largest is None else largest / div,
                     "total_size": total / div,
                     **usage, "training_peak": peak if peak != -1 else None})
    return rows


def rule_peak(params: int, precision: str) -> int:
    """The 16-bytes-per-parameter rule (fp32) / 8 (mixed) for a bare parameter count."""
    size = 4 * params
    usage = training_usage(size, "float32" if precision == "fp32" else "bfloat16")
    return max(usage.values())
