"""The time model: how long one training step takes, the throughput, and the time to finish.

Pure arithmetic over the architecture, the config and the hardware facts (no torch, no NVML).
One step is ``grad_accum`` micro-batches on every GPU, then the optimizer step:

* compute, per micro-batch: the FLOPs of the linear layers (2 per multiply-add; backward twice
  the forward: the input gradient and the weight gradient), attention's s² term (halved for
  causal masks, as flash/SDPA kernels skip the masked half), the LM head, and with activation
  checkpointing one more forward of the blocks; run at ``MATMUL_EFFICIENCY`` /
  ``ATTENTION_EFFICIENCY`` of the GPU's peak dense throughput for the compute dtype. Besides the
  FLOPs, eager PyTorch moves every activation through HBM for the norms, RoPE, the MLP's
  activation, residual adds and the loss; that traffic (the ``ELEMENTWISE_*`` counts) runs at
  ``MEMORY_EFFICIENCY`` of the HBM bandwidth. That term is what makes a GPU with more FLOPs per
  byte (H100 against A100) reach a lower MFU on the same model, with no per-GPU constant.
* communication: DDP's all-reduce of the gradients (once per step, fp32 under autocast);
  FSDP's all-gathers (forward, and backward again for FULL_SHARD) and reduce-scatter of the
  gradients, in the compute dtype, every micro-batch; HYBRID_SHARD's gathers inside a machine
  and an all-reduce of the gradient shard between machines. Ring collectives move (n-1)/n of the
  data (all-reduce twice that) per GPU, at ``LINK_EFFICIENCY`` of the link: NVLink, PCIe, or the
  network between machines shared by a machine's GPUs. FSDP prefetches the next block while
  this one computes and DDP reduces buckets during backward: only what exceeds the compute, plus
  the first gather and the last reduction, is exposed.
* offload (FSDP CPU offload): the fp32 parameter shard crosses PCIe for every gather and the
  fp32 gradient shard comes back every micro-batch; then the optimizer step runs on the CPU, at
  ``HOST_BANDWIDTH_PER_RANK`` for the ``CPU_ADAM_BYTES`` it touches per parameter.

Every constant below is one assumption for all models and GPUs. The four efficiencies (matmul,
attention, memory, overlap cost) were fitted on published throughput rows; docs/throughput.md
shows the error per row, calibration and held-out (``python -m validation.throughput``).

Hooks for what other branches add: ``config.method`` ``lora``/``qlora`` (no weight gradients for
the frozen base weights; QLoRA dequantizes each 4-bit weight to the compute dtype in forward,
backward and recompute) are read with ``getattr`` so this module works before and after.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from trainwiz.estimator.gpu_facts import GpuFacts, gpu_facts
from trainwiz.estimator.types import ModelSpec, TrainConfig, sharding_of

# ---- the one set of utilisation assumptions (see docs/throughput.md) ---------------------------
MATMUL_EFFICIENCY = 0.80  # share of peak dense tensor FLOP/s that a transformer's GEMMs reach
ATTENTION_EFFICIENCY = 0.50  # flash / SDPA attention, forward and backward
MEMORY_EFFICIENCY = 0.64  # share of the HBM bandwidth small eager elementwise kernels reach
LINK_EFFICIENCY = 0.80  # NCCL bus bandwidth and pinned host copies against the link's rate
OVERLAP_COST = 0.15  # compute slowed by this share of the overlapped transfer time (NCCL's SMs, HBM)
HOST_BANDWIDTH_PER_RANK = 20e9  # bytes/s of host memory one rank's CPU optimizer step streams
CPU_ADAM_BYTES = 64  # bytes torch's CPU AdamW reads and writes per parameter (states, temporaries)
GPU_OPTIMIZER_BYTES = {"adamw": 48, "adafactor": 32, "sgd": 16, "adamw8bit": 16}  # per parameter
FUSED_ADAMW_BYTES = 28
# HBM traffic of one block's eager forward, per token, counted op by op for a Llama block under
# bf16 autocast (RMSNorm upcast to fp32 and back, RoPE on q and k, SDPA's reads and writes, the
# q/k/v transposes, residual adds, the MLP's activation and product); backward moves twice that.
ELEMENTWISE_PER_HIDDEN = 118  # bytes per unit of hidden size
ELEMENTWISE_PER_KV = 38  # bytes per unit of key/value width (RoPE on k, SDPA reads, transposes)
ELEMENTWISE_PER_FFN = 10  # bytes per unit of MLP width
LOSS_BYTES_PER_VOCAB = 30  # logits written, upcast, log-softmax, their gradient

MAX_GPUS_PER_MACHINE = 8  # an HGX/DGX board: more GPUs (than that and than the box) are more machines
PCIE_GBS_PER_LANE = {3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}  # GB/s per lane, one direction

BOUNDS = ("compute", "communication", "offload")


@dataclass(frozen=True)
class TimeHardware:
    """What the time model needs to know about the box: the GPU's facts, the links."""

    gpu: GpuFacts | None  # the slowest GPU of the run (None: unknown: time not estimated)
    gpu_name: str | None = None
    intra_link: str = "unknown"  # "nvlink" | "pcie" | "unknown": between the GPUs of a machine
    intra_bytes_per_second: float | None = None  # one direction, per GPU
    pcie_bytes_per_second: float | None = None  # host <-> GPU, one direction
    network_bytes_per_second: float | None = None  # between machines, per machine
    gpus_per_node: int | None = None  # GPUs of the probed machine
    reason: str | None = None  # why the time cannot be estimated (unknown GPU, ...)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimeEstimate:
    """One step's time and what it is made of. All None with ``reason`` when not estimated."""

    step_seconds: float | None = None
    tokens_per_step: int | None = None
    tokens_per_second: float | None = None
    tokens_per_second_per_gpu: float | None = None
    mfu: float | None = None
    bound: str | None = None  # compute | communication | offload
    run_seconds: float | None = None
    run_tokens: int | None = None
    run_steps: int | None = None
    parts: dict = field(default_factory=dict)  # seconds per step: compute, communication, ...
    reason: str | None = None
    notes: tuple[str, ...] = ()
    machines: int | None = None  # not estimated for want of the network between these machines

    @property
    def estimated(self) -> bool:
        return self.step_seconds is not None

    def to_json(self) -> dict:
        return {
            "step_seconds": self.step_seconds,
            "tokens_per_step": self.tokens_per_step,
            "tokens_per_second": self.tokens_per_second,
            "tokens_per_second_per_gpu": self.tokens_per_second_per_gpu,
            "mfu": self.mfu,
            "bound": self.bound,
            "run_seconds": self.run_seconds,
            "run_tokens": self.run_tokens,
            "run_steps": self.run_steps,
            "parts": {k: round(v, 6) for k, v in self.parts.items()},
            "not_estimated": self.reason,
            "notes": list(self.notes),
        }


# ---- hardware --------------------------------------------------------------------------------

def pcie_bytes_per_second(generation: int | None, width: int | None) -> float | None:
    lane = PCIE_GBS_PER_LANE.get(generation) if generation else None
    return None if lane is None or not width else lane * width * 1e9


def time_hardware(gpus, *, topology: list | None = None, network: float | None = None
                  ) -> TimeHardware:
    """The time model's view of the GPUs a run uses.

    ``gpus``: the run's GPUs as ``trainwiz.hardware`` describes them (``GpuInfo``: ``.name``,
    and where known ``.nvlink_links``, ``.pcie_gen``, ``.pcie_width``), NVML's or a simulated
    box's, or the same as dicts (``GpuInfo.to_json()``, as a run directory keeps them).
    ``topology``: ``Detection.extra["topology"]`` (pairs linked by ``NVLINK``), when NVML gave
    one. ``network``: bytes/s between machines (``--network``), per machine.
    """
    gpus = [_GpuView(g) if isinstance(g, dict) else g for g in gpus]
    if not gpus:
        return TimeHardware(gpu=None, reason="no GPU model known: use --simulate or run on the box")
    notes: list[str] = []
    known = [(g, gpu_facts(g.name)) for g in gpus]
    unknown = sorted({g.name for g, f in known if f is None})
    if unknown:
        return TimeHardware(gpu=None, gpu_name=unknown[0],
                            reason=f"no data-sheet figures for {unknown[0]}")
    # synchronous training runs at the pace of its slowest GPU
    slowest_gpu, slowest = min(known, key=lambda gf: gf[1].peak_flops("bf16") or gf[1].peak_flops("fp16") or 0)
    if len({f.key for _, f in known}) > 1:
        notes.append(f"mixed GPUs: timed at the pace of the slowest, {slowest_gpu.name}")

    nvlinked = _all_nvlinked(gpus, topology)
    facts = [f for _, f in known]
    if nvlinked and all(f.nvlink_gbs for f in facts):
        active = [getattr(g, "nvlink_links", None) for g in gpus]
        share = 1.0
        for (g, f), links in zip(known, active):
            if links and f.nvlink_links:
                share = min(share, links / f.nvlink_links)
        intra = min(f.nvlink_gbs for f in facts) / 2 * 1e9 * share
        link = "nvlink"
    else:
        intra, link = None, "pcie"
    pcie_rates = []
    for g, f in known:
        gen = getattr(g, "pcie_gen", None) or f.pcie_generation
        width = getattr(g, "pcie_width", None) or f.pcie_width
        pcie_rates.append(pcie_bytes_per_second(gen, width))
    pcie = min(pcie_rates) if all(r is not None for r in pcie_rates) else None
    if link == "pcie":
        intra = pcie
    return TimeHardware(gpu=slowest, gpu_name=slowest_gpu.name, intra_link=link,
                        intra_bytes_per_second=intra, pcie_bytes_per_second=pcie,
                        network_bytes_per_second=network,
                        gpus_per_node=len(gpus), notes=tuple(notes))


class _GpuView:
    """A GPU record kept as a dict, read like a GpuInfo."""

    def __init__(self, data: dict) -> None:
        self.index = data.get("index")
        self.name = data.get("name")
        self.nvlink_links = data.get("nvlink_links")
        self.pcie_gen = data.get("pcie_gen")
        self.pcie_width = data.get("pcie_width")


def _all_nvlinked(gpus, topology) -> bool:
    """True when every GPU of the run reaches the others over NVLink."""
    links = [getattr(g, "nvlink_links", None) for g in gpus]
    if any(n == 0 for n in links):
        return False
    if topology and len(gpus) > 1:
        idx = {g.index for g in gpus if getattr(g, "index", None) is not None}
        pairs = {tuple(sorted(t["gpus"])) for t in topology if t.get("link") == "NVLINK"}
        wanted = {(a, b) for a in idx for b in idx if a < b}
        if wanted and not wanted <= pairs:
            return False
    return all(n is not None and n > 0 for n in links) or all(n is None for n in links)


# ---- FLOPs and bytes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Work:
    """One micro-batch on one GPU."""

    matmul_flops: float  # linear layers incl. LM head, forward + backward (+ recompute)
    attention_flops: float  # score and value products actually computed
    hbm_bytes: float  # elementwise traffic
    model_flops: float  # what MFU counts: 6·N·tokens + attention (PaLM's convention, no recompute)


def _compute_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def _dtype(precision: str) -> str:
    if precision.startswith("bf16"):
        return "bf16"
    if precision.startswith("fp16"):
        return "fp16"
    return "fp32"


def _weight_grad_fraction(model: ModelSpec, config: TrainConfig) -> float:
    """Share of the linear weights whose gradient is computed. Hook for LoRA/QLoRA (branch
    ``lora``): frozen base weights need the input gradient but no weight gradient."""
    if getattr(config, "method", "full") in ("lora", "qlora"):
        trainable = getattr(model, "trainable_params", None)
        return min(trainable / model.params, 1.0) if trainable else 0.0
    return 1.0


def _dequant_bytes(config: TrainConfig, linear_params: float, passes: float) -> float:
    """Hook for QLoRA: every pass over a 4-bit weight reads it (0.5 byte per weight), writes a
    compute-dtype copy (2 bytes) and the matmul reads that copy (2 bytes)."""
    if getattr(config, "method", "full") != "qlora":
        return 0.0
    return linear_params * (0.5 + 2 + 2) * passes


def micro_batch_work(model: ModelSpec, config: TrainConfig, recompute: float | None = None) -> _Work:
    """``recompute``: share of the blocks' forward run again in backward (1 with activation
    checkpointing, 0 without; selective checkpointing recomputes part)."""
    b, s = config.batch_size, config.seq_len
    tokens = b * s
    wgrad = _weight_grad_fraction(model, config)
    if recompute is None:
        recompute = 1.0 if config.activation_checkpointing else 0.0
    passes = 1 + (1 + wgrad) + recompute  # forward, backward (input + weight grads), recompute
    if not model.has_architecture:  # a bare parameter count: the 6·N·tokens rule, nothing more
        flops = 2 * model.params * tokens * passes
        return _Work(matmul_flops=flops, attention_flops=0.0, hbm_bytes=0.0,
                     model_flops=6 * model.params * tokens)
    h, L = model.hidden_size, model.num_layers
    heads, hd = model.num_heads or 1, model.head_dim or (h // (model.num_heads or 1))
    kv = (model.num_kv_heads or heads) * hd
    f = model.intermediate_size or 4 * h
    block_linear = model.layer_params or 0
    head_linear = model.vocab_size * h if model.head in ("causal_lm", "masked_lm") and model.vocab_size else 0
    matmul = 2 * tokens * L * block_linear * passes + 2 * tokens * head_linear * (2 + wgrad)
    causal = 0.5 if model.family != "bert" else 1.0
    attn_fwd = 4 * b * s * s * heads * hd * L * causal  # QK^T and AV
    attention = attn_fwd * (1 + 2 + recompute)
    per_token_layer = ELEMENTWISE_PER_HIDDEN * h + ELEMENTWISE_PER_KV * kv + ELEMENTWISE_PER_FFN * f
    scale = 2 if config.precision == "fp32" else 1
    hbm = tokens * L * per_token_layer * scale * (1 + 2 + recompute)
    if head_linear:
        hbm += tokens * model.vocab_size * LOSS_BYTES_PER_VOCAB
    hbm += _dequant_bytes(config, L * block_linear + head_linear, passes)
    model_flops = 6 * model.params * tokens + 12 * L * heads * hd * s * tokens
    return _Work(matmul_flops=matmul, attention_flops=attention, hbm_bytes=hbm,
                 model_flops=model_flops)


# ---- the step ----------------------------------------------------------------------------------

def estimate_time(model: ModelSpec, config: TrainConfig, hardware: TimeHardware,
                  tokens: int | None = None, steps: int | None = None,
                  recompute: float | None = None) -> TimeEstimate:
    """Step time, throughput, MFU, what bounds it, and with ``tokens`` or ``steps`` the run."""
    if hardware.gpu is None:
        return TimeEstimate(reason=hardware.reason or "the GPU is unknown: time not estimated")
    gpu = hardware.gpu
    dtype = _dtype(config.precision)
    peak = gpu.peak_flops(dtype)
    if peak is None:
        hint = " (use --precision fp16)" if dtype == "bf16" and gpu.peak_flops("fp16") else ""
        return TimeEstimate(reason=f"the data sheet of {hardware.gpu_name or gpu.key} gives no "
                                   f"{dtype} throughput{hint}")
    notes = list(hardware.notes)
    if not model.has_architecture:
        notes.append("only the parameter count is known: compute from 6·N·tokens, without "
                     "attention, the LM head or memory-bound kernels (an optimistic time)")
    N = config.num_gpus
    # a machine holds the GPUs the config puts on it, at most MAX_GPUS_PER_MACHINE (or as many as
    # the probed box has, if more): 32 GPUs "on one machine" are timed as 4 machines of 8
    cap = max(hardware.gpus_per_node or 0, MAX_GPUS_PER_MACHINE)
    per_node = max(min(N // max(getattr(config, "num_nodes", 1), 1), cap), 1)
    nodes = -(-N // per_node)
    if nodes > 1 and hardware.network_bytes_per_second is None:
        return TimeEstimate(reason=f"{N} GPUs are {nodes} machines here and the network between "
                                   "them is unknown", machines=nodes)
    if per_node > 1 and not hardware.intra_bytes_per_second:
        return TimeEstimate(reason="the link between the GPUs is unknown")
    work = micro_batch_work(model, config, recompute)
    t_compute = (work.matmul_flops / (peak * MATMUL_EFFICIENCY)
                 + work.attention_flops / (peak * ATTENTION_EFFICIENCY)
                 + work.hbm_bytes / (gpu.memory_bandwidth_gbs * 1e9 * MEMORY_EFFICIENCY))

    P = model.params
    wbytes = _compute_bytes(config.precision)
    sharding = sharding_of(config.sharding)
    fsdp = config.strategy == "fsdp" and sharding.shards_params
    intra = (hardware.intra_bytes_per_second or 0) * LINK_EFFICIENCY
    net_per_gpu = ((hardware.network_bytes_per_second or 0) / per_node) * LINK_EFFICIENCY
    pcie = (hardware.pcie_bytes_per_second or 0) * LINK_EFFICIENCY

    def ring_rate(span_nodes: bool) -> float:
        rates = [intra] if per_node > 1 else []
        if span_nodes:
            rates.append(net_per_gpu)
        return min(rates) if rates else float("inf")

    over_pcie = hardware.intra_link != "nvlink"
    comm_micro = 0.0  # per micro-batch, overlappable with that micro-batch's compute
    comm_step = 0.0  # once per step, overlappable with the last backward
    if N > 1 and fsdp:
        gathers = 2 if sharding.reshard_after_forward else 1
        if sharding.within_node:
            g = per_node
            comm_micro += (gathers + 1) * (g - 1) / g * wbytes * P / _rate(intra)
            comm_micro += 2 * (nodes - 1) / nodes * wbytes * P / g / _rate(net_per_gpu)
        else:
            comm_micro += (gathers + 1) * (N - 1) / N * wbytes * P / _rate(ring_rate(nodes > 1))
    elif N > 1:  # DDP, or FSDP NO_SHARD: one all-reduce of the gradients per step; DDP's
        # gradients are fp32 under autocast, FSDP reduces in the compute dtype
        gbytes = wbytes if (config.strategy == "fsdp" or config.precision == "bf16-pure") else 4
        comm_step += 2 * (N - 1) / N * gbytes * P / _rate(ring_rate(nodes > 1))

    offload_micro = 0.0
    cpu_step = 0.0
    local = P / ((per_node if sharding.within_node else N) if fsdp else 1)
    if config.offload_params and config.strategy == "fsdp":
        gathers = 2 if sharding.reshard_after_forward or N == 1 else 1
        offload_micro = (gathers * 4 * local + 4 * local) / _rate(pcie)
        cpu_step = local * CPU_ADAM_BYTES / HOST_BANDWIDTH_PER_RANK
        if over_pcie:  # NCCL's traffic shares the same PCIe links
            offload_micro += comm_micro
            comm_micro = 0.0

    # FSDP prefetch hides the gathers behind compute but for the first and the last one
    edges = 2 / ((model.num_layers or 1) + 1)
    transfers = max(comm_micro, offload_micro)
    exposed_micro = max(transfers - t_compute, 0.0) + transfers * edges \
        + OVERLAP_COST * min(transfers, t_compute)
    backward_share = 2 / 3 * t_compute  # DDP reduces buckets while backward runs; the last
    last_bucket = min(comm_step, 25e6 / _rate(ring_rate(nodes > 1)))  # 25 MB bucket waits
    exposed_step = (max(comm_step - backward_share, 0.0) + last_bucket
                    + OVERLAP_COST * min(comm_step, backward_share))

    fused = config.optimizer == "adamw" and config.fused_optimizer
    opt_bytes = FUSED_ADAMW_BYTES if fused else GPU_OPTIMIZER_BYTES.get(config.optimizer, 48)
    hbm = gpu.memory_bandwidth_gbs * 1e9 * MEMORY_EFFICIENCY
    t_opt = 0.0 if cpu_step else local * opt_bytes / hbm  # the optimizer step is bandwidth-bound

    accum = config.grad_accum
    step = accum * (t_compute + exposed_micro) + exposed_step + t_opt + cpu_step
    tokens_per_step = config.batch_size * config.seq_len * accum * N
    tps = tokens_per_step / step
    parts = {"compute": accum * t_compute + t_opt,
             "communication": accum * comm_micro + comm_step,
             "offload": accum * offload_micro + cpu_step,
             "exposed_transfers": accum * exposed_micro + exposed_step}
    bound = max(BOUNDS, key=lambda k: parts[k])
    mfu = work.model_flops * accum * N / step / (peak * N)
    run_seconds = run_steps = None
    if tokens is not None:  # whole steps: the last one runs in full even if partly needed
        run_steps = -(-int(tokens) // tokens_per_step)
        run_seconds = run_steps * step
    elif steps is not None:
        run_steps = int(steps)
        run_seconds = steps * step
    return TimeEstimate(step_seconds=step, tokens_per_step=tokens_per_step, tokens_per_second=tps,
                        tokens_per_second_per_gpu=tps / N, mfu=mfu, bound=bound,
                        run_seconds=run_seconds, run_tokens=int(tokens) if tokens else None,
                        run_steps=run_steps, parts=parts, notes=tuple(notes))


def _rate(value: float) -> float:
    return value if value and value > 0 else float("inf")


# ---- the plan: the config's time and its suggestions ranked by time ---------------------------

@dataclass(frozen=True)
class TimedSuggestion:
    suggestion: object  # trainwiz.estimator.Suggestion
    time: TimeEstimate
    slowdown: float | None = None  # against the fastest suggestion that fits (1.0 for it)

    def to_json(self) -> dict:
        data = self.suggestion.to_json()
        data["time"] = {"step_seconds": self.time.step_seconds,
                        "tokens_per_second": self.time.tokens_per_second,
                        "tokens_per_second_per_gpu": self.time.tokens_per_second_per_gpu,
                        "run_seconds": self.time.run_seconds, "bound": self.time.bound,
                        "slowdown": self.slowdown, "not_estimated": self.time.reason}
        return data


def time_plan(est, hardware: TimeHardware, tokens: int | None = None, steps: int | None = None,
              available_gpus: int | None = None) -> tuple[TimeEstimate, tuple[TimedSuggestion, ...]]:
    """The time of ``est``'s config and of each of its suggestions: the ones that fit on this box
    ranked fastest first, then those that need more GPUs than ``available_gpus`` or change the
    training method, then those that do not fit (in the memory ranking). What the CLI prints and what the wizard's panel shows:
    ``time.tokens_per_second``, ``time.run_seconds`` and, per suggestion, ``slowdown`` against
    the fastest that fits on this box ("~20× slower")."""
    current = estimate_time(est.model, est.config, hardware, tokens, steps)
    if current.estimated and est.config.offload_params:  # say in words what offload costs
        on_gpu = estimate_time(est.model, est.config.with_changes(offload_params=False), hardware)
        if on_gpu.estimated and on_gpu.tokens_per_second > 1.5 * current.tokens_per_second:
            slow = on_gpu.tokens_per_second / current.tokens_per_second
            current = replace(current, notes=current.notes + (
                f"CPU offload makes this ~{slow:.0f}× slower than the same plan kept on the GPUs",))
    known = {f.name for f in fields(est.config)}
    timed = []
    for s in est.suggestions:
        # changes outside the TrainConfig (which GPUs, say) do not change the time
        change = {k: v for k, v in s.change.items() if k in known}
        t = estimate_time(est.model, est.config.with_changes(**change), hardware, tokens, steps)
        timed.append(TimedSuggestion(s, t))
    def beyond(t):  # more GPUs than this box has, or another training method (LoRA instead of
        # full fine-tuning): after the changes that keep the plan on this box and its method
        n = t.suggestion.change.get("num_gpus")
        more = available_gpus is not None and n is not None and n > available_gpus
        return more or bool(getattr(t.suggestion, "method_change", False))

    fitting = [t for t in timed if t.suggestion.fits]
    rest = [t for t in timed if not t.suggestion.fits]
    # stable sort: those that cannot be timed keep their memory ranking
    # (more GPUs keep the training, so they come before a change of method, timed or not)
    fitting.sort(key=lambda t: (beyond(t), bool(getattr(t.suggestion, "method_change", False)),
                                -(t.time.tokens_per_second or 0.0)))
    best = max((t.time.tokens_per_second for t in fitting if t.time.estimated and not beyond(t)),
               default=None)
    ranked = []
    for t in fitting + rest:
        slow = (best / t.time.tokens_per_second
                if best and t.time.estimated and t.suggestion.fits and not beyond(t) else None)
        ranked.append(TimedSuggestion(t.suggestion, t.time, slow))
    return current, tuple(ranked)


def approx(x: float) -> str:
    """A figure to three significant digits, the precision the model has: 17,659 -> 17,700."""
    if x < 100:
        return f"{x:.3g}"
    from math import floor, log10

    return f"{round(x, 2 - int(floor(log10(x)))):,.0f}"


def format_duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 20 min', '4.5 days', '3.2 years'."""
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{int(hours)} h {int(minutes % 60):02d} min"
    days = hours / 24
    if days < 365:
        return f"{days:.1f} days"
    return f"{approx(days / 365.25)} years"


def summary_lines(t: TimeEstimate, fits: bool | None = True,
                  network_option: str | None = None) -> list[str]:
    """The time in words, for the CLI and the wizard's panel (one to two lines of < 80 columns).
    ``fits``: the memory verdict; a config that does not fit is timed "if it fit".
    ``network_option``: how this caller is given the network between machines (the CLI's
    ``--network``), named when that is what the time lacks; a caller without one names none."""
    if not t.estimated:
        how = (f": give it with {network_option} (e.g. 400Gbps)"
               if t.machines and network_option else "")
        return [f"time: not estimated ({t.reason}{how})"]
    label = "time if it fit" if fits is False else "time"
    step = f"{t.step_seconds:.2g} s" if t.step_seconds < 10 else format_duration(t.step_seconds)
    lines = [f"{label}: ~{approx(t.tokens_per_second)} tokens/s ({approx(t.tokens_per_second_per_gpu)} per GPU), "
             f"{step} per step, {t.bound}-bound, MFU {100 * t.mfu:.0f}%"]
    if t.run_seconds is not None:
        def count(n, word):
            return f"{n:,} {word}{'s' if n != 1 else ''}"
        what = count(t.run_tokens, "token") if t.run_tokens else count(t.run_steps, "step")
        lines.append(f"to train {what}: about {format_duration(t.run_seconds)}"
                     + (f" ({count(t.run_steps, 'step')})" if t.run_tokens else ""))
    lines += [f"time note: {note}" for note in t.notes]
    return lines


def suggestion_time_text(ts: TimedSuggestion, now: TimeEstimate | None = None) -> str:
    """What follows 'fits' on a suggestion's line, in the CLI and the wizard alike: its tokens/s
    ('~9,100 tokens/s'), with '~2.5× faster' / '~25× slower' when it differs that much from the
    current plan (``now``: the ratio is against the plan the user has, never another
    suggestion), or that several machines are not timed without the network between them
    (never a time made up for them as one machine)."""
    if ts.suggestion.fits and ts.time.machines:
        return "time not estimated (network between machines unknown)"
    if not ts.time.estimated or not ts.suggestion.fits:
        return ""
    tps = ts.time.tokens_per_second
    text = f"~{approx(tps)} tokens/s"
    if now is not None and now.estimated and now.tokens_per_second and tps:
        ratio = tps / now.tokens_per_second
        if ratio >= 1.5 or ratio <= 1 / 1.5:
            times, word = (ratio, "faster") if ratio > 1 else (1 / ratio, "slower")
            text += f", ~{times:.0f}× {word}" if times >= 3 else f", ~{times:.1f}× {word}"
    return text
