"""Validation cases: small real training configs whose memory is measured on CPU.

Each :class:`Case` is one training step of a transformers model built from a config dict with
random weights. :func:`validation.measure.measure` runs it under torch's MemTracker
(FSDPMemTracker for FSDP2); :func:`case_to_estimate_inputs` turns it into what the estimator
takes. This module imports neither torch nor transformers, so the case list is cheap to import.

Every case is measured in both training loops (:data:`LOOPS`): ``custom`` keeps the model
outputs through backward and until the next forward replaces them (accelerate's examples),
``trainer`` drops them before backward (HF Trainer).

Conventions (every case): attention dropout 0 with SDPA (CPU SDPA with dropout falls back to the
math kernel, CUDA does not; eager attention is the same path on both, so eager cases may have
attention dropout), no attention mask passed (causal models use ``is_causal``), ``foreach=True``
optimizers, ``use_cache=False``. Weights in fp32 (``fp32``, ``bf16`` autocast) or loaded in
bf16 and trained as is (``bf16-pure``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

STRATEGIES = ("single", "ddp", "fsdp")
PRECISIONS = ("fp32", "bf16", "bf16-pure")
LOOPS = ("custom", "trainer")
OPTIMIZERS = ("adamw", "sgd")


def llama_config(*, tie: bool = False, vocab: int = 16000, hidden: int = 384, layers: int = 3,
                 heads: int = 6, kv_heads: int = 2, intermediate: int = 1024) -> dict:
    return {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
        "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": hidden // heads,
        "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
        "rope_theta": 10000.0, "tie_word_embeddings": tie, "use_cache": False,
    }


def qwen2_config(*, tie: bool = True, vocab: int = 16000, hidden: int = 384, layers: int = 3,
                 heads: int = 6, kv_heads: int = 2, intermediate: int = 1024) -> dict:
    return {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
        "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-6, "hidden_act": "silu", "attention_dropout": 0.0,
        "rope_theta": 10000.0, "tie_word_embeddings": tie, "use_cache": False,
        "use_sliding_window": False,
    }


def gpt2_config(*, tie: bool = True, vocab: int = 16000, hidden: int = 384, layers: int = 3,
                heads: int = 6) -> dict:
    return {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
        "vocab_size": vocab, "n_embd": hidden, "n_layer": layers, "n_head": heads,
        "n_positions": 1024, "n_inner": None, "activation_function": "gelu_new",
        "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5, "tie_word_embeddings": tie, "use_cache": False,
        "bos_token_id": 0, "eos_token_id": 0,
    }


def bert_config(*, vocab: int = 16000, hidden: int = 384, layers: int = 3, heads: int = 6,
                intermediate: int = 1536) -> dict:
    # BertForMaskedLM always ties the decoder to the word embeddings (tie_word_embeddings=True).
    return {
        "model_type": "bert", "architectures": ["BertForMaskedLM"],
        "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": intermediate,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "tie_word_embeddings": True,
        "is_decoder": False, "use_cache": False,
    }


@dataclass(frozen=True)
class Case:
    """One measured training step. ``num_gpus`` ranks are CPU gloo processes here."""

    name: str
    hf_config: dict
    strategy: str = "single"  # single | ddp | fsdp
    num_gpus: int = 1
    precision: str = "fp32"  # fp32 | bf16 (autocast around forward+loss over fp32 weights) | bf16-pure
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9); always foreach=True
    batch_size: int = 2
    seq_len: int = 256
    activation_checkpointing: bool = False
    reshard_after_forward: bool = True  # fsdp: True = FULL_SHARD, False = SHARD_GRAD_OP
    gradient_as_bucket_view: bool = False  # ddp
    attention: str = "sdpa"  # sdpa | eager (transformers' attn_implementation)
    # full fine-tuning, or PEFT LoRA / QLoRA (bitsandbytes NF4 + double quant, bf16 compute,
    # prepare_model_for_kbit_training) with adapters of this rank on these modules
    method: str = "full"  # full | lora | qlora
    lora_rank: int = 8
    lora_targets: str = "all-linear"  # PEFT's all-linear, or a comma list of module names
    lora_dropout: float = 0.0  # PEFT's default; each adapter drops its own copy of its input
    notes: str = field(default="", compare=False)

    @property
    def sharding(self) -> str | None:
        if self.strategy != "fsdp":
            return None
        return "FULL_SHARD" if self.reshard_after_forward else "SHARD_GRAD_OP"

    @property
    def head(self) -> str:
        arch = self.hf_config["architectures"][0]
        return "masked_lm" if arch.endswith("ForMaskedLM") else "causal_lm"

    def to_json(self) -> dict:
        d = asdict(self)
        d["sharding"] = self.sharding
        return d


def _c(name: str, cfg: dict, **kw) -> Case:
    return Case(name=name, hf_config=cfg, **kw)


CASES: list[Case] = [
    # ---- single process ----------------------------------------------------------------------
    _c("llama-fp32-adamw", llama_config(), batch_size=4),
    _c("llama-bf16-adamw", llama_config(), precision="bf16", batch_size=4),
    _c("llama-fp32-adamw-ac", llama_config(), activation_checkpointing=True, batch_size=4),
    _c("llama-bf16-sgd-ac", llama_config(), precision="bf16", optimizer="sgd",
       activation_checkpointing=True, batch_size=4),
    _c("llama-tied-fp32-sgd", llama_config(tie=True), optimizer="sgd", batch_size=4),
    _c("gpt2-fp32-adamw", gpt2_config()),
    _c("gpt2-bf16-adamw-ac", gpt2_config(), precision="bf16", activation_checkpointing=True),
    _c("gpt2-untied-fp32-sgd", gpt2_config(tie=False), optimizer="sgd"),
    _c("bert-mlm-fp32-adamw", bert_config()),
    _c("bert-mlm-bf16-sgd", bert_config(), precision="bf16", optimizer="sgd"),
    _c("qwen2-fp32-adamw", qwen2_config()),
    _c("qwen2-untied-bf16-adamw-ac", qwen2_config(tie=False), precision="bf16",
       activation_checkpointing=True),
    # ---- DDP, 2 gloo ranks -------------------------------------------------------------------
    _c("ddp-llama-fp32-adamw", llama_config(), strategy="ddp", num_gpus=2),
    _c("ddp-gpt2-bf16-adamw", gpt2_config(), strategy="ddp", num_gpus=2, precision="bf16"),
    _c("ddp-bert-mlm-fp32-sgd-ac", bert_config(), strategy="ddp", num_gpus=2, optimizer="sgd",
       activation_checkpointing=True),
    # ---- FSDP2, fully_shard per decoder layer + root, 2 gloo ranks ---------------------------
    _c("fsdp-full-llama-fp32-adamw", llama_config(), strategy="fsdp", num_gpus=2),
    _c("fsdp-gradop-llama-fp32-adamw", llama_config(), strategy="fsdp", num_gpus=2,
       reshard_after_forward=False),
    _c("fsdp-full-llama-bf16-adamw", llama_config(), strategy="fsdp", num_gpus=2,
       precision="bf16"),
    _c("fsdp-gradop-qwen2-bf16-adamw-ac", qwen2_config(), strategy="fsdp", num_gpus=2,
       precision="bf16", reshard_after_forward=False, activation_checkpointing=True),
    _c("fsdp-full-gpt2-fp32-sgd-ac", gpt2_config(), strategy="fsdp", num_gpus=2,
       optimizer="sgd", activation_checkpointing=True),
]

# Small vocabulary, wide MLP: the loss no longer dominates, so the peak moves to the optimizer
# step (weights + gradients + AdamW state + its foreach temporary) and the backward.
_WIDE = {"vocab": 2048, "hidden": 512, "layers": 4, "heads": 8, "kv_heads": 4, "intermediate": 2048}
CASES += [
    _c("llama-wide-fp32-adamw", llama_config(**_WIDE), batch_size=1, seq_len=128),
    _c("ddp-llama-wide-bf16-adamw", llama_config(**_WIDE), strategy="ddp", num_gpus=2,
       precision="bf16", batch_size=1, seq_len=128),
    _c("fsdp-full-llama-wide-fp32-adamw", llama_config(**_WIDE), strategy="fsdp", num_gpus=2,
       batch_size=1, seq_len=128),
    _c("fsdp-gradop-llama-wide-bf16-sgd", llama_config(**_WIDE), strategy="fsdp", num_gpus=2,
       precision="bf16", optimizer="sgd", reshard_after_forward=False, batch_size=2, seq_len=256),
]



def phi3_config(*, vocab: int = 8000, hidden: int = 384, layers: int = 3, heads: int = 6,
                intermediate: int = 1024) -> dict:
    return {
        "model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads,
        "max_position_embeddings": 1024, "original_max_position_embeddings": 1024,
        "rms_norm_eps": 1e-5, "hidden_act": "silu", "attention_dropout": 0.0,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "tie_word_embeddings": False, "use_cache": False,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    }


def gemma_config(*, vocab: int = 8000, hidden: int = 384, layers: int = 3, heads: int = 4,
                 kv_heads: int = 1, head_dim: int = 96, intermediate: int = 1536) -> dict:
    return {
        "model_type": "gemma", "architectures": ["GemmaForCausalLM"],
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": intermediate,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "head_dim": head_dim, "max_position_embeddings": 1024, "rms_norm_eps": 1e-6,
        "hidden_activation": "gelu_pytorch_tanh", "attention_dropout": 0.0,
        "tie_word_embeddings": True, "use_cache": False,
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
    }


# More families and the eager attention path (s×s scores kept: the same kernels on CPU and CUDA).
CASES += [
    _c("llama-eager-fp32-adamw", llama_config(vocab=4000), attention="eager", batch_size=2, seq_len=512),
    _c("phi3-fp32-adamw", phi3_config(), batch_size=2, seq_len=256),
    _c("gemma-bf16-sgd", gemma_config(), precision="bf16", optimizer="sgd", batch_size=2, seq_len=256),
]

# bf16-pure: the model loaded in bf16 and trained as is (no autocast; bf16 AdamW state).
CASES += [
    _c("llama-pure-adamw", llama_config(), precision="bf16-pure", batch_size=4),
    _c("gpt2-pure-sgd", gpt2_config(), precision="bf16-pure", optimizer="sgd"),
    _c("bert-mlm-pure-adamw-ac", bert_config(), precision="bf16-pure",
       activation_checkpointing=True),
    _c("ddp-qwen2-pure-adamw", qwen2_config(), strategy="ddp", num_gpus=2,
       precision="bf16-pure"),
    _c("fsdp-full-llama-pure-adamw", llama_config(), strategy="fsdp", num_gpus=2,
       precision="bf16-pure"),
]

# Eager attention with attention dropout (the softmax output, the mask and the dropped
# probabilities are kept: the same kernels on CPU and CUDA but for the mask's dtype).
CASES += [
    _c("gpt2-eager-attndrop-fp32-adamw", {**gpt2_config(vocab=4000), "attn_pdrop": 0.1},
       attention="eager"),
    _c("bert-mlm-eager-attndrop-fp32-sgd",
       {**bert_config(vocab=4000), "attention_probs_dropout_prob": 0.1}, attention="eager",
       optimizer="sgd"),
    _c("llama-eager-attndrop-bf16-adamw", {**llama_config(vocab=4000), "attention_dropout": 0.1},
       attention="eager", precision="bf16"),
]

# Deep and narrow: 12 blocks, so the estimator's bulk path for the middle blocks is measured.
_DEEP = {"vocab": 2048, "hidden": 128, "layers": 12, "heads": 4, "kv_heads": 2,
         "intermediate": 384}
CASES += [
    _c("llama-deep12-fp32-adamw", llama_config(**_DEEP), batch_size=2, seq_len=256),
    _c("fsdp-full-llama-deep12-bf16-adamw", llama_config(**_DEEP), strategy="fsdp", num_gpus=2,
       precision="bf16", batch_size=2, seq_len=256),
]

# LoRA (PEFT, frozen fp32 base) and QLoRA (bitsandbytes NF4 with double quantization, bf16
# compute, prepare_model_for_kbit_training, then PEFT): Llama and Qwen2, all-linear and q/v only.
_LORA = {"method": "lora", "batch_size": 4}
_QLORA = {"method": "qlora", "precision": "bf16", "batch_size": 4}
_QV = "q_proj,v_proj"
CASES += [
    _c("lora-llama-fp32-adamw", llama_config(), **_LORA),
    _c("lora-llama-bf16-adamw-qv-r16-drop", llama_config(), precision="bf16", lora_rank=16,
       lora_targets=_QV, lora_dropout=0.05, **_LORA),
    _c("lora-qwen2-fp32-adamw-ac", qwen2_config(), activation_checkpointing=True, **_LORA),
    _c("qlora-llama-adamw-ac-r16", llama_config(), activation_checkpointing=True, lora_rank=16,
       **_QLORA),
    _c("qlora-qwen2-adamw-qv", qwen2_config(), lora_targets=_QV, **_QLORA),
    _c("ddp-lora-llama-bf16-adamw", llama_config(), strategy="ddp", num_gpus=2,
       precision="bf16", **_LORA),
    _c("ddp-qlora-qwen2-adamw-ac", qwen2_config(), strategy="ddp", num_gpus=2,
       activation_checkpointing=True, **_QLORA),
    # small vocabulary: the blocks (NF4 weights, dequantized copies), not the loss, set the peak
    _c("qlora-llama-wide-adamw", llama_config(**_WIDE), method="qlora", precision="bf16",
       batch_size=2, seq_len=256),
]

CASES_BY_NAME: dict[str, Case] = {c.name: c for c in CASES}


def get_case(name: str) -> Case:
    try:
        return CASES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown validation case {name!r}; known: {', '.join(CASES_BY_NAME)}")


def case_to_estimate_inputs(case: Case, loop: str = "custom") -> tuple[dict, dict]:
    """Return ``(hf_config_dict, TrainConfig fields)`` for the estimator, for one of the loops.

    The config dict goes to ``trainwiz.estimator.catalog.model_from_hf_config``; the fields to
    ``trainwiz.estimator.types.TrainConfig(**fields)``.
    """
    fields = {
        "strategy": case.strategy,
        "num_gpus": case.num_gpus,
        "precision": case.precision,
        "optimizer": case.optimizer,
        "fused_optimizer": False,  # foreach=True, as CUDA's default
        "batch_size": case.batch_size,
        "seq_len": case.seq_len,
        "activation_checkpointing": case.activation_checkpointing,
        "attention": case.attention,
        "gradient_as_bucket_view": case.gradient_as_bucket_view,
        "loop": loop,
    }
    if case.sharding is not None:
        fields["sharding"] = case.sharding
    if case.method != "full":
        fields.update(method=case.method, lora_rank=case.lora_rank, lora_targets=case.lora_targets,
                      lora_dropout=case.lora_dropout)
    return dict(case.hf_config), fields
