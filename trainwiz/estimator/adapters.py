"""LoRA and QLoRA: which linear layers a model has, which ones PEFT targets, and the counts.

Each family's linear layers are written out as transformers names them (``model.layers.{i}.
self_attn.q_proj``, GPT-2's ``Conv1D`` layers, BERT's ``attention.self.query``), so a target list
is matched the way PEFT matches ``target_modules``: a module is targeted when its name equals a
target or ends with ``"." + target``. ``all-linear`` is PEFT's shorthand: every linear layer
except the output layer (``get_output_embeddings()``; for a classification head, ``score`` or
``classifier``, which PEFT's SEQ_CLS task trains in full instead, as ``modules_to_save``).

Counts are PEFT's ``get_nb_trainable_parameters()``: LoRA adds A (r x in) and B (out x r) per
targeted layer (no bias); 4-bit weights are stored packed two to a byte, and PEFT counts a
``Params4bit`` as ``numel * 2 * element_size``, which gives back the unquantized count. A SEQ_CLS
head kept in ``modules_to_save`` is a trainable copy beside the frozen original: both are counted.

QLoRA quantizes what transformers' bitsandbytes integration converts: every linear layer except
the output embeddings, tied weights and the module holding the model's last parameter (the
classification head).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from trainwiz.errors import UsageError
from trainwiz.estimator.types import METHODS, ModelSpec

ALL_LINEAR = "all-linear"

# NF4 with double quantization (bitsandbytes, the QLoRA recipe): 4 bits per weight; one absmax
# per 64 weights, itself quantized to 8 bits, with an fp32 constant per 256 of those and one
# fp32 offset per tensor; bnb's 16-value NF4 code table and the 256-value table of the second
# level sit beside each weight (fp32).
NF4_BLOCK = 64
NF4_NESTED_BLOCK = 256


@dataclass(frozen=True)
class Linear:
    """One linear layer (``{i}`` in the name stands for the block index)."""

    name: str
    fan_in: int
    fan_out: int
    bias: bool
    per_block: bool = True
    output: bool = False  # the model's output layer (all-linear leaves it out)
    head: bool = False  # a classification head (PEFT's SEQ_CLS trains it in full)
    quantizable: bool = True  # converted to 4 bit by transformers' bitsandbytes integration
    part: str = ""  # where in the block: attn_in (q/k/v), attn_out, mlp_in (gate/up), mlp_out

    @property
    def weight(self) -> int:
        return self.fan_in * self.fan_out

    def names(self, layers: int) -> list[str]:
        if not self.per_block:
            return [self.name]
        return [self.name.format(i=i) for i in range(layers)]


@dataclass(frozen=True)
class Adapted:
    """The outcome of a LoRA/QLoRA set-up on one model."""

    targets: tuple  # Linear layers that get an adapter
    rank: int
    trainable: int  # PEFT's trainable count
    total: int  # PEFT's total count
    adapter_params: int  # A and B of every targeted layer
    head_params: int  # a SEQ_CLS head trained in full (modules_to_save copy)
    quantized_weight_params: int  # QLoRA: weights stored in NF4 (0 for LoRA)
    quantized_layers: int  # QLoRA: how many weight tensors are in NF4


def linear_layers(model: ModelSpec) -> tuple[Linear, ...]:
    """Every linear layer of the model, as transformers builds it."""
    if not model.has_architecture:
        return ()
    return _linear_layers(model)


@lru_cache(maxsize=64)
def _linear_layers(model: ModelSpec) -> tuple[Linear, ...]:
    fam, h, f = model.family, model.hidden_size, model.intermediate_size
    V, labels = model.vocab_size, model.num_labels
    out: list[Linear] = []
    if fam == "gpt2":
        p = "transformer.h.{i}."
        out += [Linear(p + "attn.c_attn", h, 3 * h, True, part="attn_in"),
                Linear(p + "attn.c_proj", h, h, True, part="attn_out"),
                Linear(p + "mlp.c_fc", h, f, True, part="mlp_in"),
                Linear(p + "mlp.c_proj", f, h, True, part="mlp_out")]
        if model.head == "causal_lm":
            out.append(Linear("lm_head", h, V, False, per_block=False, output=True,
                              quantizable=False))
        elif model.head == "seq_cls":
            out.append(Linear("score", h, labels, False, per_block=False, head=True,
                              quantizable=False))
        return tuple(out)
    if fam == "bert":
        p = "bert.encoder.layer.{i}."
        out += [Linear(p + "attention.self.query", h, h, True, part="attn_in"),
                Linear(p + "attention.self.key", h, h, True, part="attn_in"),
                Linear(p + "attention.self.value", h, h, True, part="attn_in"),
                Linear(p + "attention.output.dense", h, h, True, part="attn_out"),
                Linear(p + "intermediate.dense", h, f, True, part="mlp_in"),
                Linear(p + "output.dense", f, h, True, part="mlp_out")]
        if model.head == "masked_lm":
            out += [Linear("cls.predictions.transform.dense", h, h, True, per_block=False),
                    Linear("cls.predictions.decoder", h, V, True, per_block=False, output=True,
                           quantizable=False)]
        elif model.head == "seq_cls":
            out += [Linear("bert.pooler.dense", h, h, True, per_block=False),
                    Linear("classifier", h, labels, True, per_block=False, head=True,
                           quantizable=False)]
        elif model.head == "base":  # the pooler holds the last parameter: not quantized
            out.append(Linear("bert.pooler.dense", h, h, True, per_block=False, quantizable=False))
        return tuple(out)
    # llama-like
    d = model.head_dim
    q, kv = model.num_heads * d, model.num_kv_heads * d
    qkv_bias = fam == "qwen2"  # config.json's attention_bias/mlp_bias are folded into the counts
    p = "model.layers.{i}."
    if fam == "phi3":
        out += [Linear(p + "self_attn.qkv_proj", h, q + 2 * kv, False, part="attn_in"),
                Linear(p + "self_attn.o_proj", q, h, False, part="attn_out"),
                Linear(p + "mlp.gate_up_proj", h, 2 * f, False, part="mlp_in"),
                Linear(p + "mlp.down_proj", f, h, False, part="mlp_out")]
    else:
        out += [Linear(p + "self_attn.q_proj", h, q, qkv_bias, part="attn_in"),
                Linear(p + "self_attn.k_proj", h, kv, qkv_bias, part="attn_in"),
                Linear(p + "self_attn.v_proj", h, kv, qkv_bias, part="attn_in"),
                Linear(p + "self_attn.o_proj", q, h, False, part="attn_out"),
                Linear(p + "mlp.gate_proj", h, f, False, part="mlp_in"),
                Linear(p + "mlp.up_proj", h, f, False, part="mlp_in"),
                Linear(p + "mlp.down_proj", f, h, False, part="mlp_out")]
    if model.head == "causal_lm":
        out.append(Linear("lm_head", h, V, False, per_block=False, output=True, quantizable=False))
    elif model.head == "seq_cls":
        out.append(Linear("score", h, labels, False, per_block=False, head=True, quantizable=False))
    return tuple(out)


def module_names(model: ModelSpec) -> list[str]:
    """Names a user can give as targets: the last part of each linear layer's name, or, where
    that is shared (GPT-2's c_proj, BERT's dense), its path inside the block (or the model)."""
    layers = linear_layers(model)
    shorts = [lin.name.rsplit(".", 1)[-1] for lin in layers]
    out: list[str] = []
    for lin, short in zip(layers, shorts):
        if shorts.count(short) > 1:
            short = lin.name.split("{i}.", 1)[-1]
        if short not in out:
            out.append(short)
    return out


def parse_targets(text) -> tuple[str, ...]:
    """``all-linear`` or a comma list (a profile may give a YAML list) -> a tuple of names."""
    if isinstance(text, (list, tuple)):
        items = [str(t).strip() for t in text]
    else:
        items = [t.strip() for t in str(text).split(",")]
    items = [t for t in items if t]
    if len(items) == 1 and items[0].lower() == ALL_LINEAR:
        return (ALL_LINEAR,)
    return tuple(items)


def _matches(name: str, key: str) -> bool:
    return name == key or name.endswith("." + key)


def resolve_targets(model: ModelSpec, targets) -> tuple[Linear, ...]:
    """The linear layers PEFT would put an adapter on; a target matching nothing is an error."""
    keys = parse_targets(targets)
    return _resolve(model, keys)


@lru_cache(maxsize=256)
def _resolve(model: ModelSpec, keys: tuple) -> tuple[Linear, ...]:
    layers = linear_layers(model)
    if not layers:
        raise UsageError("LoRA needs the model's layers: give a catalog name or a config.json, "
                         "not --params N")
    if not keys:
        raise UsageError(f"--lora-targets is empty: give {ALL_LINEAR} or module names such as "
                         f"{','.join(module_names(model)[:2])}")
    if keys == (ALL_LINEAR,):
        return tuple(lin for lin in layers if not lin.output and not lin.head)
    chosen: list[Linear] = []
    for key in keys:
        hit = [lin for lin in layers if _matches_any(lin, key, model.num_layers)]
        if not hit:
            raise UsageError(f"--lora-targets: {key!r} matches no linear layer of this "
                             f"{model.family} model; its linear layers are "
                             f"{', '.join(module_names(model))} (or use {ALL_LINEAR})")
        chosen += [lin for lin in hit if lin not in chosen]
    return tuple(lin for lin in layers if lin in chosen)  # model order


def _matches_any(lin: Linear, key: str, layers: int) -> bool:
    if not lin.per_block:
        return _matches(lin.name, key)
    if any(part.isdigit() for part in key.split(".")):  # names one block: try each
        return any(_matches(n, key) for n in lin.names(layers))
    return _matches(lin.name.format(i=0), key)


def adapted(model: ModelSpec, method: str, rank: int, targets) -> Adapted | None:
    """PEFT's counts for LoRA/QLoRA on ``model``; None for full fine-tuning."""
    if method == "full":
        return None
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise UsageError(f"--lora-rank must be a whole number of at least 1, got {rank!r}")
    chosen = resolve_targets(model, targets)
    L = model.num_layers
    adapter = 0
    for lin in chosen:
        adapter += rank * (lin.fan_in + lin.fan_out) * (L if lin.per_block else 1)
    head = 0
    if model.head == "seq_cls":  # PEFT's SEQ_CLS task: a trainable copy of the classifier
        for lin in linear_layers(model):
            if lin.head:
                head += lin.weight + (lin.fan_out if lin.bias else 0)
    quantized = layers_4bit = 0
    if method == "qlora":
        for lin in linear_layers(model):
            if lin.quantizable:
                n = L if lin.per_block else 1
                quantized += n * lin.weight
                layers_4bit += n
    # PEFT counts a Params4bit as numel * 2 * element_size: packed (n + 1) // 2 bytes -> n (+1 if odd)
    packed_extra = 0
    if method == "qlora":
        for lin in linear_layers(model):
            if lin.quantizable and lin.weight % 2:
                packed_extra += L if lin.per_block else 1
    trainable = adapter + head
    total = model.params + adapter + head + packed_extra
    return Adapted(targets=chosen, rank=rank, trainable=trainable, total=total,
                   adapter_params=adapter, head_params=head,
                   quantized_weight_params=quantized, quantized_layers=layers_4bit)


def nf4_bytes(weights: int, tensors: int = 1, double_quant: bool = True) -> int:
    """Bytes of ``tensors`` 4-bit tensors of ``weights`` weights each, as bitsandbytes stores them:
    the packed values (two per byte) and the quantization state beside each: one absmax per 64
    weights, which double quantization stores in 8 bits with an fp32 constant per 256 of them,
    an fp32 offset and a 256-value fp32 code table; and the 16-value fp32 NF4 code table."""
    blocks = -(-weights // NF4_BLOCK)
    if double_quant:
        state = blocks + 4 * -(-blocks // NF4_NESTED_BLOCK) + 4 + 4 * 256
    else:
        state = 4 * blocks
    return tensors * ((weights + 1) // 2 + state + 4 * 16)
