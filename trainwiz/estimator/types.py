"""Values the estimator takes and returns. Pure data; sizes are bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

STRATEGIES = ("single", "ddp", "fsdp")
PRECISIONS = ("fp32", "fp16", "bf16", "bf16-pure")
# custom: the caller keeps the model outputs (logits) through backward and until the next forward
# replaces them, as accelerate's examples do; trainer: dropped before backward (HF Trainer, TRL)
LOOPS = ("custom", "trainer")
# How each choice reads in an explanation (the CLI's config line, the app's field help).
LOOP_TEXT = {"custom": "custom (outputs kept through backward; --loop trainer if yours drops them)",
             "trainer": "trainer (outputs dropped before backward, as the HF Trainer does)"}
PRECISION_TEXT = {"fp32": "fp32", "fp16": "fp16 mixed", "bf16": "bf16 mixed",
                  "bf16-pure": "bf16 pure"}
OPTIMIZERS = ("adamw", "sgd", "adafactor", "adamw8bit")
ATTENTIONS = ("sdpa", "eager")
HEADS = ("causal_lm", "masked_lm", "seq_cls", "base")
METHODS = ("full", "lora", "qlora")


@dataclass(frozen=True)
class Sharding:
    """What an FSDP sharding strategy does, the one description the estimator, the profile rules,
    the plan, the wizard and the launcher read."""

    name: str
    number: int  # torch's ShardingStrategy value, which accelerate also accepts for it
    shards_params: bool  # parameters, gradients, optimizer state split across GPUs (else DDP-like)
    within_node: bool  # shards among a node's GPUs (num_gpus // num_nodes), replicates across nodes
    reshard_after_forward: bool  # parameters freed after forward and gathered again for backward
    fsdp1_only: bool  # FSDP2 has no such strategy (it knows reshard-after-forward only)
    min_gpus: int  # on fewer there is nothing to shard across
    text: str  # what it means, in a few words

    def __str__(self) -> str:
        return self.name


FSDP_SHARDINGS = {s.name: s for s in (
    Sharding("FULL_SHARD", number=1, shards_params=True, within_node=False,
             reshard_after_forward=True, fsdp1_only=False, min_gpus=1,
             text="shard everything (least memory)"),
    Sharding("SHARD_GRAD_OP", number=2, shards_params=True, within_node=False,
             reshard_after_forward=False, fsdp1_only=False, min_gpus=2,
             text="keep parameters gathered between forward and backward (faster, more memory)"),
    Sharding("NO_SHARD", number=3, shards_params=False, within_node=False,
             reshard_after_forward=False, fsdp1_only=True, min_gpus=1,
             text="like DDP (FSDP version 1)"),
    Sharding("HYBRID_SHARD", number=4, shards_params=True, within_node=True,
             reshard_after_forward=True, fsdp1_only=True, min_gpus=2,
             text="shard within each node, replicate across nodes (FSDP version 1)"),
)}
SHARDINGS = tuple(FSDP_SHARDINGS)


def sharding_of(name: str) -> Sharding:
    """The description of a sharding strategy name (one of ``SHARDINGS``)."""
    return FSDP_SHARDINGS[name]


def fsdp2_sharding(reshard_after_forward: bool) -> str:
    """The strategy FSDP2's one switch, reshard-after-forward, stands for."""
    return next(s.name for s in FSDP_SHARDINGS.values()
                if not s.fsdp1_only and s.reshard_after_forward == reshard_after_forward)


@dataclass(frozen=True)
class ModelSpec:
    """A model's size and, when known, its architecture.

    ``params`` is the exact count of trainable parameters. Architecture fields are ``None`` for a
    bare ``--params N`` model, in which case activations cannot be estimated.
    """

    name: str
    params: int
    family: str = "unknown"  # llama mistral qwen2 gemma gemma2 gpt2 bert phi3 | unknown
    head: str = "causal_lm"
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_position: int | None = None
    tie_embeddings: bool = False
    num_labels: int = 2
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    embedding_dropout: float = 0.0
    final_logit_softcapping: float | None = None
    embedding_params: int | None = None  # token (+ position) embeddings
    layer_params: int | None = None  # one transformer block
    source: str = "catalog"  # catalog | config.json path | params

    @property
    def has_architecture(self) -> bool:
        return self.hidden_size is not None and self.num_layers is not None


@dataclass(frozen=True)
class TrainConfig:
    strategy: str = "single"
    num_gpus: int = 1
    sharding: str = "FULL_SHARD"  # FSDP only
    num_nodes: int = 1  # HYBRID_SHARD shards within a node of num_gpus // num_nodes GPUs
    precision: str = "fp32"  # fp16/bf16: autocast with fp32 master weights; bf16-pure: all bf16
    optimizer: str = "adamw"
    fused_optimizer: bool = False  # fused kernels allocate no foreach temporaries
    batch_size: int = 1  # per-GPU micro-batch
    seq_len: int = 512
    grad_accum: int = 1
    activation_checkpointing: bool = False
    offload_params: bool = False
    attention: str = "sdpa"
    gradient_as_bucket_view: bool = False  # DDP
    # Parameter-efficient fine-tuning (PEFT): frozen base weights, LoRA adapters of this rank on
    # these modules (all-linear or a comma list); qlora also stores the frozen linear weights in
    # 4-bit NF4 (bitsandbytes), double-quantized unless double_quant is False.
    method: str = "full"  # full | lora | qlora
    lora_rank: int = 16
    lora_targets: str = "all-linear"
    lora_dropout: float = 0.0
    double_quant: bool = True
    loop: str = "custom"  # see LOOPS

    def with_changes(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU memory. ``peak_allocated`` compares with torch.cuda.max_memory_allocated();
    ``total`` = peak_allocated + overhead is what must fit."""

    params: int = 0
    grads: int = 0
    optimizer: int = 0
    activations: int = 0
    temporary: int = 0
    peak_allocated: int = 0
    overhead: int = 0
    total: int = 0
    # Parts of ``params`` under LoRA/QLoRA (0 for full fine-tuning): the frozen base weights kept
    # in 16/32 bit, the frozen weights stored in 4-bit NF4 with their quantization constants, and
    # the trainable adapters.
    frozen_params: int = 0
    quantized_params: int = 0
    adapter_params: int = 0

    def to_json(self) -> dict:
        return {k: int(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Suggestion:
    change: dict  # TrainConfig field -> new value, e.g. {"activation_checkpointing": True}
    total: int  # per-GPU total with the change applied
    note: str
    fits: bool = True
    slower: bool = False  # e.g. CPU offload: fits, but much slower
    method_change: bool = False  # LoRA/QLoRA instead of full fine-tuning: another training
    # what its estimate could not price (Estimate.not_estimated): its total is then a lower
    # bound, and a total within the GPU "may fit", never "fits"
    not_estimated: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """Its verdict word (one of ``VERDICTS``): "does not fit", "may fit" or "fits"."""
        if not self.fits:
            return "does not fit"
        return "may fit" if self.not_estimated else "fits"

    @property
    def verdict_text(self) -> str:
        """Its verdict as a suggestion's line says it."""
        if not self.fits:
            return "still too big"
        if self.not_estimated:
            return f"may fit ({', '.join(self.not_estimated)} unknown)"
        return "fits"

    def to_json(self) -> dict:
        # "fits" is null when only a lower bound is within the GPU ("verdict": "may fit")
        return {"change": dict(self.change), "total": int(self.total), "note": self.note,
                "fits": verdict_of(self.verdict).fits, "verdict": self.verdict,
                "not_estimated": list(self.not_estimated),
                "slower": self.slower, "method_change": self.method_change}


@dataclass(frozen=True)
class Verdict:
    """How a memory verdict is shown, the one description the CLI and the app both use: its word
    (what ``Estimate.verdict`` and ``--json`` hold), its rank (0 is the worst: a plan is as good
    as its worst GPU), a banner word and a mark that read without colour (NO_COLOR, a pipe,
    a screenshot), and a style for where there is colour (a rich/Textual style string)."""

    word: str
    rank: int
    banner: str
    mark: str
    style: str
    fits: bool | None

    def __str__(self) -> str:
        return self.word


VERDICTS = {v.word: v for v in (
    Verdict("does not fit", 0, "DOES NOT FIT", "✗", "bold red", False),
    Verdict("tight", 1, "TIGHT", "!", "bold yellow", True),
    Verdict("unknown", 2, "UNKNOWN", "?", "bold", None),
    # the total is a lower bound (activations not estimated: a bare parameter count) and that
    # bound is within the GPU: whether the whole step fits is not known
    Verdict("may fit", 3, "MAY FIT", "≥", "bold yellow", None),
    Verdict("fits", 4, "FITS", "✓", "bold green", True),
)}


def verdict_of(word: str) -> Verdict:
    """The description of a verdict word; a word this version does not know reads as itself,
    ranked and styled as unknown."""
    known = VERDICTS.get(word)
    if known is not None:
        return known
    return Verdict(word, VERDICTS["unknown"].rank, word.upper(), "?", "bold", None)


def worst_verdict(words) -> str:
    """The worst of some verdict words (a plan's verdict is its worst GPU's); "unknown" if none."""
    return min(words, key=lambda w: verdict_of(w).rank, default="unknown")


@dataclass(frozen=True)
class Estimate:
    model: ModelSpec
    config: TrainConfig
    per_gpu: MemoryBreakdown
    host_ram: int
    gpu_memory: int | None  # capacity the verdict is against (None: unknown)
    gpu_free: int | None = None  # free memory now, when the GPU is busy
    fits: bool | None = None
    verdict: str = "unknown"  # "fits" | "tight" | "may fit" | "does not fit" | "unknown"
    suggestions: tuple[Suggestion, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. which terms could not be estimated
    terms: dict = field(default_factory=dict)  # finer breakdown for reports (name -> bytes)
    # PEFT's print_trainable_parameters(): trainable and all parameters (LoRA adds its adapters
    # to the model's own); for full fine-tuning both are the model's parameter count.
    trainable_params: int | None = None
    total_params: int | None = None

    @property
    def not_estimated(self) -> tuple[str, ...]:
        """The ``per_gpu`` fields that could not be estimated (``activations`` for a bare
        parameter count): shown as "unknown", null in JSON."""
        return tuple(self.terms.get("not_estimated", ()))

    def to_json(self) -> dict:
        return {
            "model": {"name": self.model.name, "params": self.model.params,
                      "trainable_params": (self.model.params if self.trainable_params is None
                                           else self.trainable_params),
                      "total_params": (self.model.params if self.total_params is None
                                       else self.total_params),
                      "family": self.model.family, "source": self.model.source},
            "config": self.config.to_json(),
            # what was not estimated is null, never 0
            "per_gpu": {k: None if k in self.not_estimated else v
                        for k, v in self.per_gpu.to_json().items()},
            "not_estimated": list(self.not_estimated),
            "host": {"ram": int(self.host_ram)},
            "gpu_memory": self.gpu_memory,
            "gpu_free": self.gpu_free,
            "fits": self.fits,
            "verdict": self.verdict,
            "suggestions": [s.to_json() for s in self.suggestions],
            "notes": list(self.notes),
        }
