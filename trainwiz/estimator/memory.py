"""The memory model: one training step, replayed as a timeline of allocations and frees.

The step is the usual loop in steady state (the optimizer state exists):

    outputs = model(**batch); loss = outputs.loss; loss.backward(); optimizer.step()
    optimizer.zero_grad(set_to_none=True)

With ``loop="custom"`` (accelerate's examples, most hand-written loops) ``outputs`` holds the
logits through backward and the optimizer step, until the next forward replaces them; with
``loop="trainer"`` (the HF Trainer, TRL) only the loss leaves the forward.

We walk it block by block — forward, loss, backward in reverse, optimizer step — adding and
removing named tensors, and keep the moment where the sum peaks and what it was made of. That
peak is ``peak_allocated`` (comparable with ``torch.cuda.max_memory_allocated()``); ``overhead``
(CUDA context, NCCL buffers, allocator slack) comes on top to give ``total``, what must fit.

Strategies: single GPU; DDP (a full replica plus the reducer's flat gradient buckets unless
``gradient_as_bucket_view``); FSDP as FSDP2 ``fully_shard`` per transformer block plus the root
(embeddings, final norm, head): sharded fp32 parameters, gradients and optimizer state; each block
all-gathered in the compute dtype while it runs, with the next block prefetched; FULL_SHARD frees
a block after its forward, SHARD_GRAD_OP keeps every block gathered from forward to backward;
the root stays gathered for the whole step. Mixed precision is autocast over fp32 weights (the
low-precision weight copies autocast makes are kept for backward), except under FSDP, where the
weights are gathered in bf16/fp16 directly and gradients reduced in that dtype
(MixedPrecisionPolicy with param_dtype = reduce_dtype), as accelerate 1.x sets up FSDP2.
``bf16-pure`` is the model loaded in bf16 and trained as is (lit-gpt's bf16-true, torchtune's
default): weights, gradients and optimizer state all 2 bytes, no autocast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from trainwiz.errors import UsageError
from trainwiz.estimator import activations as acts
from trainwiz.estimator import adapters as peft
from trainwiz.estimator.types import (
    ATTENTIONS,
    LOOPS,
    METHODS,
    OPTIMIZERS,
    PRECISIONS,
    SHARDINGS,
    STRATEGIES,
    Estimate,
    MemoryBreakdown,
    ModelSpec,
    TrainConfig,
    sharding_of,
)

MiB = 1 << 20
GiB = 1 << 30

# What CUDA takes outside the caching allocator, per process, from published measurements of
# these terms alone (validation/published.yaml "components"; docs/published.md says how):
# the CUDA context with every kernel loaded (torch 2.1.1+cu121 on an A100: 0.92 GiB; lazy loading
# starts at 0.47 GiB and grows towards it as a step loads its kernels), and what a rank's GPU
# gains at the first collective of an NCCL group (2-rank measurement: 2.00 - 0.55 GiB).
CUDA_CONTEXT = int(0.92 * GiB)
NCCL_BUFFERS = int(1.45 * GiB)
# Reserved beyond allocated at the peak (caching-allocator fragmentation), as a fraction of the
# peak, read from the covered published reserved / nvidia-smi figures (docs/published.md): 18-20%
# keeps every one of them within 15%; 18.5%, toward the low end, because the reference talk's
# Llama-3-8B FSDP-offload run on two 24 GB RTX 4090s did run, and 19% would call it out of memory.
ALLOCATOR_SLACK = 0.185
TIGHT_MARGIN = 0.10  # "tight" when less than this fraction of the usable memory would be left

CATEGORIES = ("params", "grads", "optimizer", "activations", "temporary")
SUBCATEGORIES = ("frozen_params", "quantized_params", "adapter_params")  # parts of params
FROZEN = "params:frozen_params"
QUANTIZED = "params:quantized_params"
ADAPTERS = "params:adapter_params"


@dataclass
class Timeline:
    """Live tensors by category; remembers the largest total and what it was made of."""

    live: dict = field(default_factory=dict)  # name -> (category, bytes)
    current: int = 0
    peak: int = 0
    peak_at: str = ""
    peak_tensors: dict = field(default_factory=dict)

    def add(self, name: str, category: str, size: int) -> None:
        """Grow (or, with a negative size, shrink) the tensor group ``name``."""
        if size:
            old = self.live.get(name)
            self.live[name] = (category, (old[1] if old else 0) + size)
            self.current += size

    def free(self, *names: str) -> None:
        for name in names:
            old = self.live.pop(name, None)
            if old:
                self.current -= old[1]

    def mark(self, moment: str, extra: dict | None = None) -> None:
        """Consider now (plus ``extra`` transient tensors) as a candidate peak."""
        now = self.current + (sum(size for _, size in extra.values()) if extra else 0)
        if now > self.peak:
            self.peak, self.peak_at = now, moment
            self.peak_tensors = {**self.live, **extra} if extra else dict(self.live)

    @property
    def peak_parts(self) -> dict:
        """Bytes per category at the peak; a category ``"params:frozen_params"`` counts in
        ``params`` and also in its own part, ``frozen_params``."""
        parts = dict.fromkeys(CATEGORIES + SUBCATEGORIES, 0)
        for category, size in self.peak_tensors.values():
            main, _, sub = category.partition(":")
            parts[main] += size
            if sub:
                parts[sub] += size
        return parts


def _segments(layers: int, backward: bool = False):
    """Blocks as (index, count): the two first and two last one at a time, the middle in bulk.

    Every block adds the same amounts, so within a phase the running total moves one way and its
    peak is at the first or last blocks; the middle ones only need adding up. This keeps an
    estimate of an 80-layer model as cheap as a 4-layer one.
    """
    if layers <= 4:
        order = [(i, 1) for i in range(layers)]
    else:
        order = [(0, 1), (1, 1), (2, layers - 4), (layers - 2, 1), (layers - 1, 1)]
    return list(reversed(order)) if backward else order


def _check(config: TrainConfig) -> None:
    def allowed(field_name, value, choices):
        if value not in choices:
            raise UsageError(f"{field_name} must be one of {', '.join(choices)}, got {value!r}")

    allowed("strategy", config.strategy, STRATEGIES)
    allowed("sharding", config.sharding, SHARDINGS)
    allowed("precision", config.precision, PRECISIONS)
    allowed("optimizer", config.optimizer, OPTIMIZERS)
    allowed("attention", config.attention, ATTENTIONS)
    allowed("loop", config.loop, LOOPS)
    allowed("method", config.method, METHODS)
    if config.method != "full":
        r = config.lora_rank
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise UsageError(f"--lora-rank must be a whole number of at least 1, got {r!r}")
        if not 0 <= config.lora_dropout < 1:
            raise UsageError(f"LoRA dropout must be from 0 to below 1, got {config.lora_dropout!r}")
    if config.method == "qlora" and config.precision == "fp32":
        raise UsageError("QLoRA computes in bf16 or fp16 (bnb_4bit_compute_dtype): --precision fp32 "
                         "is not QLoRA; use --precision bf16 (or fp16), or --method lora")
    for name in ("num_gpus", "batch_size", "seq_len", "grad_accum", "num_nodes"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name.replace('_', '-')} must be a whole number of at least 1, got {value!r}")
    if config.strategy == "single" and config.num_gpus != 1:
        raise UsageError(f"strategy single runs on one GPU, got --num-gpus {config.num_gpus}; "
                         "use --strategy ddp or fsdp for more")
    sharding = sharding_of(config.sharding)
    if config.strategy == "fsdp" and config.num_gpus == 1 and sharding.min_gpus > 1:
        raise UsageError(f"sharding {sharding} needs at least {sharding.min_gpus} GPUs (--num-gpus); "
                         "on one GPU there is nothing to shard: use --strategy single, or FULL_SHARD "
                         "with offload")
    if sharding.within_node and config.strategy == "fsdp":
        if config.num_nodes < 2 or config.num_gpus % config.num_nodes:
            raise UsageError(f"{sharding} shards within a node and replicates across nodes: it "
                             "needs --num-nodes of at least 2 that divides --num-gpus")
    if config.offload_params and config.strategy != "fsdp":
        raise UsageError("--offload-params needs --strategy fsdp (FSDP's CPU offload)")


def weight_bytes(precision: str) -> int:
    """Bytes of one stored weight (and of its gradient and each optimizer state value)."""
    return 2 if precision == "bf16-pure" else 4


def optimizer_state_bytes(optimizer: str, params: int, largest_matrix: int | None = None,
                          dtype_bytes: int = 4) -> int:
    """Optimizer state; torch creates it like the parameters (``zeros_like``), so in their dtype."""
    if optimizer == "adamw":
        return 2 * dtype_bytes * params  # exp_avg + exp_avg_sq
    if optimizer == "sgd":
        return dtype_bytes * params  # momentum buffer
    if optimizer == "adamw8bit":  # bitsandbytes: 1 byte per state + an fp32 absmax per 256-value block
        return 2 * params + 2 * (params // 256 + 1) * 4
    # adafactor: factored second moment (row + column statistics) for matrices; no first moment
    return int(dtype_bytes * params * 0.01) + 4 * 1024


def optimizer_temporary_bytes(optimizer: str, params: int, fused: bool, dtype_bytes: int = 4) -> int:
    """Extra memory inside optimizer.step(). foreach AdamW holds sqrt(exp_avg_sq) for every
    parameter at once (one copy of the parameters in their dtype); fused kernels and SGD without
    weight decay allocate nothing that size."""
    if fused:
        return 0
    if optimizer == "adamw":
        return dtype_bytes * params
    if optimizer == "adafactor":
        return dtype_bytes * params  # the per-parameter update before clipping
    return 0


def _layout(model: ModelSpec):
    """(per-block params, root params, head linear params) — root = embeddings + final norm + head."""
    if not model.has_architecture:
        return 0, model.params, 0
    block = model.layer_params or 0
    root = model.params - model.num_layers * block
    head_linear = model.vocab_size * model.hidden_size if model.head in ("causal_lm", "masked_lm") else 0
    return block, root, head_linear


@dataclass(frozen=True)
class _Weights:
    """Where the weights live and which train: full fine-tuning, or PEFT's frozen base + LoRA."""

    stored: tuple  # (name, category, bytes) of the weights kept for the whole run, unsharded
    trainable: int  # parameters that train (and have gradients and optimizer state)
    grad_bytes: int  # bytes per gradient (and optimizer state value) of a trainable parameter
    block_trainable: int  # trainable parameters of one block
    head_trainable: int  # trainable parameters of the head (full: the output layer)
    embed_trainable: bool  # the embeddings train
    gather_block: int  # FSDP: one block all-gathered
    casts_block: int  # autocast: the low-precision weight copies one block keeps for backward
    lora: acts.Lora | None
    adapted: peft.Adapted | None = None


def _weights(model: ModelSpec, config: TrainConfig, wb: int, gathered: int, fsdp: bool) -> _Weights:
    P = model.params
    block_p, root_p, head_linear = _layout(model)
    linear_in_block = max(block_p - _block_norm_params(model), 0)
    if config.method == "full":
        return _Weights(stored=(("params", "params", wb * P),), trainable=P, grad_bytes=wb,
                        block_trainable=block_p, head_trainable=head_linear, embed_trainable=True,
                        gather_block=gathered * block_p, casts_block=2 * linear_in_block,
                        lora=None)
    a = peft.adapted(model, config.method, config.lora_rank, config.lora_targets)
    L = model.num_layers
    per_block = [t for t in a.targets if t.per_block]
    ad_block = sum(config.lora_rank * (t.fan_in + t.fan_out) for t in per_block)
    # Adapters train in fp32 over fp32 weights (autocast, or PEFT's autocast_adapter_dtype over
    # a bf16 base), and in bf16 under bf16-pure, as LitGPT's and torchtune's bf16 recipes do.
    ad_bytes = wb
    stored = [("adapters", ADAPTERS, ad_bytes * a.trainable)]
    dequant = 0
    quantized_block = 0
    if config.method == "qlora":
        layers = [t for t in peft.linear_layers(model) if t.quantizable]
        nf4 = sum(peft.nf4_bytes(t.weight, 1, config.double_quant) * (L if t.per_block else 1)
                  for t in layers)
        quantized_block = sum(peft.nf4_bytes(t.weight, 1, config.double_quant)
                              for t in layers if t.per_block)
        stored.append(("weights.nf4", QUANTIZED, nf4))
        # prepare_model_for_kbit_training upcasts what is not quantized to fp32 (bf16-pure: left
        # in bf16, as LitGPT's bf16-true and torchtune do), except the biases of 4-bit layers,
        # which bitsandbytes turns to the compute dtype on first use
        biases = sum(t.fan_out * (L if t.per_block else 1) for t in layers if t.bias)
        stored.append(("weights.frozen", FROZEN,
                       wb * (P - a.quantized_weight_params - biases) + 2 * biases))
        biggest = max((t.weight for t in layers if t.per_block), default=0)
        dequant = 2 * biggest + 4 * -(-biggest // peft.NF4_BLOCK)  # bf16 weight + fp32 absmax
        q_params_block = sum(t.weight for t in layers if t.per_block)
        gather_block = quantized_block + gathered * (block_p - q_params_block + ad_block)
        casts = 2 * ad_block  # bitsandbytes dequantizes in backward instead of keeping a copy
    else:
        stored.append(("weights.frozen", FROZEN, wb * P))
        gather_block = gathered * (block_p + ad_block)
        casts = 2 * (linear_in_block + ad_block)
    lora = acts.Lora(rank=config.lora_rank, parts=tuple(t.part for t in per_block),
                     adapter_bytes=gathered if fsdp else ad_bytes,
                     quantized=config.method == "qlora", dropout=config.lora_dropout,
                     dequant=dequant)
    return _Weights(stored=tuple(stored), trainable=a.trainable, grad_bytes=ad_bytes,
                    block_trainable=ad_block, head_trainable=a.head_params, embed_trainable=False,
                    gather_block=gather_block, casts_block=casts, lora=lora, adapted=a)


def _block_norm_params(model: ModelSpec) -> int:
    h = model.hidden_size or 0
    return {"gemma2": 4 * h, "gpt2": 4 * h, "bert": 4 * h}.get(model.family, 2 * h)


def estimate(model: ModelSpec, config: TrainConfig, gpu_memory: int | None = None,
             gpu_free: int | None = None, *, kernels: str = "cuda") -> Estimate:
    """Per-GPU memory of one steady-state training step and its fit verdict (no suggestions:
    ``trainwiz.estimator.fit.estimate`` adds those, pricing alternatives with this function).

    ``kernels="cpu"`` sizes what CPU kernels keep where they differ from CUDA's (dropout masks,
    autocast's fp32 ops): only for comparing with CPU measurements (validation/)."""
    _check(config)
    if gpu_memory is not None and gpu_memory <= 0:
        raise UsageError(f"--gpu-memory must be positive, got {gpu_memory}")
    notes: list[str] = []
    tl = Timeline()
    P = model.params
    sharding = sharding_of(config.sharding)
    fsdp = config.strategy == "fsdp" and sharding.shards_params
    low = config.precision != "fp32"
    wb = weight_bytes(config.precision)  # stored weights, their gradients, optimizer state
    amp = config.precision in ("fp16", "bf16")  # autocast around forward and loss (accelerate)
    if fsdp:
        shard = config.num_gpus // config.num_nodes if sharding.within_node else config.num_gpus
        gathered = 2 if low else 4  # FSDP gathers weights in the compute dtype
        prec = acts.Precision(compute=gathered, residual=gathered, autocast=False, amp=amp,
                              cuda=kernels == "cuda")
    else:
        shard, gathered = 1, wb
        # autocast over fp32 weights; bf16-pure computes in the weights' own dtype
        prec = acts.Precision(compute=2 if low else 4, residual=wb, autocast=amp, amp=amp,
                              cuda=kernels == "cuda")
    attention = config.attention
    if model.family == "gemma2" and attention == "sdpa":
        attention = "eager"
        notes.append("gemma2 soft-caps attention logits, which SDPA cannot do: sized with eager attention")

    block_p, root_p, head_linear = _layout(model)
    L = model.num_layers or 0
    if config.method != "full" and not model.has_architecture:
        raise UsageError("LoRA and QLoRA need the model's layers to place the adapters: give a "
                         "catalog name or a config.json, not --params N")
    w = _weights(model, config, wb, gathered, fsdp)
    if config.method == "qlora" and not config.activation_checkpointing:
        notes.append("QLoRA without activation checkpointing: prepare_model_for_kbit_training "
                     "turns it on unless told use_gradient_checkpointing=False (then add "
                     "--activation-checkpointing)")
    frozen_cat = FROZEN if w.lora is not None else "params"
    gb = w.grad_bytes

    # ---- persistent state ------------------------------------------------------------------
    on_gpu = not (fsdp and config.offload_params)
    local_params = -(-w.trainable // shard)  # trainable parameters this rank updates
    opt_state = optimizer_state_bytes(config.optimizer, local_params, dtype_bytes=gb)
    opt_temp = optimizer_temporary_bytes(config.optimizer, local_params, config.fused_optimizer, gb)
    if on_gpu:
        for name, category, size in w.stored:
            tl.add(name, category, -(-size // shard))
        tl.add("optimizer.state", "optimizer", opt_state)
    if config.strategy == "ddp" and not config.gradient_as_bucket_view:
        tl.add("ddp.buckets", "grads", gb * w.trainable)  # buckets hold trainable parameters only
    if fsdp and model.has_architecture:
        tl.add("root.gathered", frozen_cat, gathered * root_p)  # unsharded from forward to its backward

    if not model.has_architecture:
        notes.append("activations, logits and the temporaries of forward and backward not "
                     "estimated: only the parameter count is known (give a catalog name or a "
                     "config.json for those); the total is the weights, gradients and optimizer "
                     "step alone")
        if fsdp:
            notes.append("FSDP's gathered blocks not estimated either: the layer sizes are unknown")
        tl.mark("forward")
        tl.add("grads", "grads", wb * local_params)
        tl.mark("backward end")
        tl.mark("optimizer step", {"optimizer.temp": ("temporary", opt_temp)})
        est = _finish(model, config, tl, gpu_memory, gpu_free, notes, shard)
        # shown as "unknown" (null in JSON), never as 0 B; the total is a lower bound, so
        # within the GPU it "may fit", never "fits"
        fits, verdict = _verdict(est.per_gpu.total, gpu_memory, gpu_free, lower_bound=True)
        return replace(est, fits=fits, verdict=verdict,
                       terms={**est.terms, "not_estimated": ("activations",)})

    dims = acts.dims_of(model, config.batch_size, config.seq_len)
    block = acts.block_memory(model, dims, prec, attention, w.lora)
    head = acts.head_memory(model, dims, prec, frozen=w.lora is not None)
    ckpt = config.activation_checkpointing
    casts = prec.autocast  # autocast keeps a low-precision copy of each linear weight for backward

    # The custom loop's ``outputs`` from the previous step, alive until this forward returns.
    keep_outputs = config.loop == "custom"
    if keep_outputs:
        tl.add("outputs.previous", "activations", head.logits)

    # ---- forward ----------------------------------------------------------------------------
    # Blocks are alike, so their tensors are kept under shared names ("blocks.saved" grows by one
    # block at a time).
    # LoRA: the embeddings are frozen, so nothing before the first adapter needs a gradient and
    # autograd keeps none of it: not the embedding output, not the first norm's input, not the
    # first attention projections' weight copies.
    first_less = first_casts_less = 0
    if w.lora is not None and not ckpt:
        first_less = block.saved.get("norm1.input", block.saved.get(
            "norm1.input_fp32", block.saved.get("ln_1.input", 0)))
        # nor the first attention adapters' dropout masks (their input needs no gradient)
        first_less += sum(size for name, size in block.saved.items()
                          if name.endswith("lora_dropout.mask") and name.startswith(
                              ("qkv_proj.", "c_attn.", "qkv.")))
        if casts and not w.lora.quantized:
            first_casts_less = 2 * sum(t.weight for t in peft.linear_layers(model)
                                       if t.per_block and t.part == "attn_in")
    for name, size in head.embed_saved.items():
        if not (first_less and name == "block_input"):
            tl.add(f"embed.{name}", "activations", size)
    gather = w.gather_block if fsdp else 0
    keep_gathered = fsdp and not sharding.reshard_after_forward
    saved_per_block = dims.T * dims.h * prec.residual if ckpt else block.saved_total
    for i, n in _segments(L):
        tl.add("blocks.gathered", frozen_cat, n * gather)
        marked = n == 1
        # FSDP2 keeps the block's flat all-gather output until the next block's all-gather is
        # waited on (to overlap its copy-out with that collective): one more block in memory
        prefetch = {"prefetch": (frozen_cat, gather)} if fsdp and shard > 1 else {}
        if ckpt:  # only the block input is kept (the first block's is the embedding output)
            tl.add("blocks.saved", "activations", n * saved_per_block if i > 0 else 0)
            if marked:
                tl.mark(f"forward block {i}", {**prefetch, "block.transient": (
                    "temporary", block.saved_total + block.forward_transient)})
        else:
            tl.add("blocks.saved", "activations", n * block.saved_total - (first_less if i == 0 else 0))
            if casts:
                tl.add("blocks.weight_casts", "activations",
                       n * w.casts_block - (first_casts_less if i == 0 else 0))
            if marked:
                tl.mark(f"forward block {i}", {**prefetch, "block.transient": ("temporary", block.forward_transient)})
        if not keep_gathered:
            tl.add("blocks.gathered", frozen_cat, -n * gather)
    for name, size in head.head_saved.items():
        tl.add(f"head.{name}", "activations", size)
    if casts and head_linear:
        tl.add("head.weight_cast", "activations", 2 * head_linear)
    tl.add("logits", "activations", head.logits)
    loss_transient = {"loss.upcast": ("temporary", head.loss_forward_transient)}
    if fsdp and shard > 1 and L:  # the last block's all-gather output, until the root's forward ends
        loss_transient["prefetch"] = (frozen_cat, gather)
    tl.mark("loss", loss_transient)
    tl.free("outputs.previous")  # the caller's variable now holds this step's outputs
    if not keep_outputs:
        tl.free("logits")  # the caller keeps only the loss

    # ---- backward ---------------------------------------------------------------------------
    if fsdp and not keep_gathered and L:  # the root's pre-backward gathers the last block
        tl.add("blocks.gathered", frozen_cat, gather)
    tl.mark("loss backward", {"loss.grads": ("temporary", head.loss_backward_transient)})
    for name in head.head_saved:
        tl.free(f"head.{name}")
    tl.free("head.weight_cast")
    if fsdp:
        # the root's gradients stay unsharded until the root's backward ends (after embeddings)
        tl.add("root.grads_unsharded", "grads", gathered * w.head_trainable)
    else:
        tl.add("grads.head", "grads", gb * w.head_trainable)
    for i, n in _segments(L, backward=True):
        marked = n == 1
        transient = {"block.grad_transient": ("temporary", block.backward_transient)}
        if fsdp and not keep_gathered:
            if i != L - 1:
                tl.add("blocks.gathered", frozen_cat, n * gather)
            if i > 0:
                transient["prefetch"] = (frozen_cat, gather)
        if ckpt:  # recompute the block's forward, keeping its saved tensors for its backward
            tl.add("block.recomputed", "activations", block.saved_total)
            if casts:
                tl.add("blocks.weight_casts", "activations", w.casts_block)
        freed_saved = -n * (saved_per_block if (i > 0 or not ckpt) else 0) + (
            first_less if i == 0 else 0)
        if fsdp:
            tl.add("block.grads_unsharded", "grads", gathered * w.block_trainable)
            if marked:
                tl.mark(f"backward block {i}", transient)
            # The block's backward has run (its saved tensors are gone). FSDP2's post-backward:
            # reshard, reclaim the previous reduce-scatter input (it keeps one in flight), copy
            # this block's gradients into a new one, then drop them.
            tl.free("block.recomputed")
            tl.add("blocks.saved", "activations", freed_saved)
            tl.add("blocks.gathered", frozen_cat, -n * gather)
            tl.free("rs.input")
            tl.add("rs.input", "grads", gathered * w.block_trainable)
            if marked:
                tl.mark(f"backward block {i} reduce-scatter",
                        {k: v for k, v in transient.items() if k == "prefetch"})
            tl.free("block.grads_unsharded")
            tl.add("grads.sharded", "grads", n * -(-gb * w.block_trainable // shard))
            continue
        if marked:
            tl.mark(f"backward block {i}", transient)
        tl.add("grads.blocks", "grads", n * gb * w.block_trainable)
        if marked:
            tl.mark(f"backward block {i} grads")
        tl.free("block.recomputed")
        tl.add("blocks.saved", "activations", freed_saved)
        if casts:
            tl.add("blocks.weight_casts", "activations", -(n if not ckpt else 1) * w.casts_block
                   + (first_casts_less if i == 0 else 0))
    # embeddings: a dense gradient of the table; tied to the head, it is added into the head's
    embed_grad = wb * (root_p - head_linear if not model.tie_embeddings else root_p)
    if fsdp:
        if w.embed_trainable:
            tl.add("root.grads_unsharded", "grads", gathered * (root_p - head_linear))
        tl.mark("backward embeddings")
        tl.free("root.gathered", "rs.input")  # the root's post-backward: reshard, reclaim
        root_trainable = root_p if w.embed_trainable else w.head_trainable
        tl.add("rs.input", "grads", gathered * root_trainable)
        tl.mark("backward embeddings reduce-scatter")
        # the end of backward waits for the reduce-scatters and drops their inputs
        tl.free("root.grads_unsharded", "rs.input")
        tl.add("grads.sharded", "grads", -(-gb * root_trainable // shard))
    elif not w.embed_trainable:  # LoRA: frozen embeddings, no gradient
        tl.mark("backward embeddings")
    elif model.tie_embeddings:
        tl.mark("backward embeddings", {"embed.grad": ("temporary", wb * (model.embedding_params or 0))})
        tl.add("grads.embed", "grads", max(embed_grad - wb * head_linear, 0))
    else:
        tl.add("grads.embed", "grads", embed_grad)
        tl.mark("backward embeddings")
    for name in head.embed_saved:
        tl.free(f"embed.{name}")
    if fsdp and config.offload_params:
        tl.free("grads.sharded")  # offloaded to the host as they are reduced

    # ---- optimizer step --------------------------------------------------------------------
    if on_gpu:
        tl.mark("optimizer step", {"optimizer.temp": ("temporary", opt_temp)})
    return _finish(model, config, tl, gpu_memory, gpu_free, notes, shard, w.adapted)


def _finish(model, config, tl: Timeline, gpu_memory, gpu_free, notes, shard,
            adapted: peft.Adapted | None = None) -> Estimate:
    parts = tl.peak_parts
    peak = tl.peak
    overhead = CUDA_CONTEXT + int(ALLOCATOR_SLACK * peak)
    if config.num_gpus > 1:
        overhead += NCCL_BUFFERS
    total = peak + overhead
    per_gpu = MemoryBreakdown(params=parts["params"], grads=parts["grads"],
                              optimizer=parts["optimizer"], activations=parts["activations"],
                              temporary=parts["temporary"], peak_allocated=peak,
                              overhead=overhead, total=total,
                              frozen_params=parts["frozen_params"],
                              quantized_params=parts["quantized_params"],
                              adapter_params=parts["adapter_params"])
    host_ram = _host_ram(model, config, shard)
    fits, verdict = _verdict(total, gpu_memory, gpu_free)
    terms = {"peak_at": tl.peak_at, "tensors_at_peak": {
        name: size for name, (_, size) in sorted(tl.peak_tensors.items(), key=lambda kv: -kv[1][1])
        if size}}
    return Estimate(model=model, config=config, per_gpu=per_gpu, host_ram=host_ram,
                    gpu_memory=gpu_memory, gpu_free=gpu_free, fits=fits, verdict=verdict,
                    notes=tuple(notes), terms=terms,
                    trainable_params=adapted.trainable if adapted else None,
                    total_params=adapted.total if adapted else None)


def usable_memory(gpu_memory: int | None, gpu_free: int | None) -> int | None:
    if gpu_memory is None:
        return None
    return min(gpu_memory, gpu_free) if gpu_free is not None else gpu_memory


def fit_on(total: int, gpu_memory: int | None, gpu_free: int | None = None,
           lower_bound: bool = False) -> tuple[bool | None, str]:
    """The verdict for one GPU: against its capacity, or its free memory when it is busy.
    ``lower_bound``: ``total`` leaves something out (``Estimate.not_estimated``)."""
    return _verdict(total, gpu_memory, gpu_free, lower_bound)


def _verdict(total: int, gpu_memory, gpu_free, lower_bound: bool = False) -> tuple[bool | None, str]:
    usable = usable_memory(gpu_memory, gpu_free)
    if usable is None:
        return None, "unknown"
    if total > usable:
        return False, "does not fit"
    if lower_bound:
        return None, "may fit"
    if total > usable * (1 - TIGHT_MARGIN):
        return True, "tight"
    return True, "fits"


def _host_ram(model: ModelSpec, config: TrainConfig, shard: int) -> int:
    """Host RAM per machine: loading the weights, plus what FSDP's CPU offload keeps there."""
    P = model.params
    wb = weight_bytes(config.precision)
    ranks = max(config.num_gpus // max(config.num_nodes, 1), 1)
    if config.strategy == "fsdp":
        ram = wb * P  # one full copy while loading (rank 0, cpu_ram_efficient_loading)
        if config.offload_params:
            local = -(-P // shard)
            ram += ranks * (2 * wb * local + optimizer_state_bytes(config.optimizer, local, dtype_bytes=wb)
                            + optimizer_temporary_bytes(config.optimizer, local, config.fused_optimizer, wb))
        return ram
    return ranks * wb * P  # every rank loads its own copy
