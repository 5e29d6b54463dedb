"""Measure one validation case: peak tensor memory of a steady-state training step on CPU.

``measure(case)`` builds the model from ``case.hf_config`` with random weights (seed 0), runs two
warm-up steps (so optimizer state exists), then measures steady-state steps under
``torch.distributed._tools.mem_tracker.MemTracker`` (single, DDP) or
``fsdp2_mem_tracker.FSDPMemTracker`` (FSDP2), once per training loop:

- ``custom``: ``outputs = model(**batch); loss = outputs.loss; loss.backward(); opt.step()`` with
  ``outputs`` kept until the next forward returns (accelerate's examples). One tracked step
  first, so that the previous step's outputs are tracked tensors when the measured one starts.
- ``trainer``: ``loss = model(**batch).loss``: the outputs are dropped before backward.

The tracker's peak is reset after each phase (forward with the loss, backward, optimizer step),
so the result has the peak of every phase, and the breakdown at the peak of the step.
DDP/FSDP cases spawn ``num_gpus`` gloo processes; rank 0's numbers are returned and every rank's
are kept under ``"ranks"``.

Imports torch and transformers; never imported by the estimator, the CLI start-up or the app.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time

from validation.cases import Case

PHASES = ("forward", "backward", "optimizer")
LOOPS = ("custom", "trainer")


def _set_threads() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("TRAINWIZ_VALIDATION_THREADS", "1")))


def _build_model(case: Case):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    cfg = dict(case.hf_config)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    auto = AutoModelForMaskedLM if case.head == "masked_lm" else AutoModelForCausalLM
    dtype = torch.bfloat16 if case.precision == "bf16-pure" else torch.float32
    model = auto.from_config(config, attn_implementation=case.attention, dtype=dtype)
    if case.method == "qlora":
        return _qlora_model(case, model, auto)
    model.train()
    if case.activation_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    del transformers
    if case.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(case))
        model.train()
    return model


def _lora_config(case: Case):
    from peft import LoraConfig

    targets = case.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",")]
    task = None if case.head == "masked_lm" else "CAUSAL_LM"
    return LoraConfig(r=case.lora_rank, lora_alpha=2 * case.lora_rank,
                      lora_dropout=case.lora_dropout,
                      target_modules=targets, task_type=task)


def _qlora_model(case: Case, model, auto):
    """The QLoRA recipe: the (random, seed 0) model saved, loaded back with bitsandbytes NF4 +
    double quantization and bf16 compute, prepare_model_for_kbit_training, then LoRA."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    import torch.distributed as dist

    ranks = dist.is_available() and dist.is_initialized()
    with tempfile.TemporaryDirectory() as tmp:
        # one checkpoint on disk, as a real run has: transformers writes it from rank 0 only
        where = [tmp]
        if ranks:
            dist.broadcast_object_list(where, src=0)
        if not ranks or dist.get_rank() == 0:
            model.save_pretrained(where[0])
        if ranks:
            dist.barrier()
        del model
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                 bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
        model = auto.from_pretrained(where[0], quantization_config=bnb, device_map="cpu",
                                     attn_implementation=case.attention)
        if ranks:
            dist.barrier()  # everyone has read it before rank 0's folder goes
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=case.activation_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, _lora_config(case))
    model.train()
    return model


def _quant_state_tensors(model) -> list:
    """The NF4 constants beside each 4-bit weight (absmax, code tables, offset): not parameters
    nor buffers, so a tracker does not find them on its own."""
    import torch

    out = []
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        while qs is not None:
            out += [t for t in (qs.absmax, qs.code, getattr(qs, "offset", None))
                    if isinstance(t, torch.Tensor)]
            qs = getattr(qs, "state2", None)
    return out


def _mem_tracker():
    """MemTracker that accepts frozen parameters.

    MemTracker registers a gradient hook on every parameter a module owns, and
    ``register_hook`` refuses tensors that do not require grad (LoRA's frozen base weights). Here
    the hooks go only on trainable parameters; frozen ones are still booked as Parameter.
    """
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

    class FrozenAwareMemTracker(MemTracker):
        def _track_module_params_and_buffers(self, module, install_grad_hooks: bool = True):
            param_memory = buffer_memory = 0
            for param in module.parameters():
                winfos = self._update_and_maybe_create_winfos(param, _MemRefType.PARAM)
                param_memory += sum(w.mem_consumed for w in winfos)
                if param.grad is not None:
                    self._update_and_maybe_create_winfos(param.grad, _MemRefType.GRAD)
                if (param.requires_grad and install_grad_hooks
                        and self._param_to_grad_hook_handles.get(param) is None):
                    def hook(grad, self=self):
                        self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)
                    self._param_to_grad_hook_handles[param] = (
                        param.register_hook(hook),
                        param.register_post_accumulate_grad_hook(lambda p, hook=hook: hook(p.grad)))
            for buffer in module.buffers():
                winfos = self._update_and_maybe_create_winfos(buffer, _MemRefType.BUFFER)
                buffer_memory += sum(w.mem_consumed for w in winfos)
            return param_memory, buffer_memory

        def track_quant_state(self, tensors) -> None:
            for t in tensors:
                self._update_and_maybe_create_winfos(t, _MemRefType.PARAM)

    return FrozenAwareMemTracker()


def _batch(case: Case, rank: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(1 + rank)
    vocab = case.hf_config["vocab_size"]
    ids = torch.randint(0, vocab, (case.batch_size, case.seq_len), generator=g)
    # labels = input_ids on every position: causal LM shifts inside the loss; for masked LM this
    # is "all positions are targets" (memory is the same as with -100 on unmasked positions:
    # log_softmax runs over every position either way).
    return {"input_ids": ids, "labels": ids.clone()}


def _optimizer(case: Case, params):
    import torch

    if case.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=1e-4, foreach=True)
    if case.optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True)
    raise ValueError(f"optimizer {case.optimizer!r} not measurable here")


def _autocast(case: Case):
    import torch

    if case.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()  # fp32, and bf16-pure: no autocast, the weights are bf16


def _decoder_layers(model, num_layers: int):
    """The ModuleList of transformer blocks (the FSDP2 / AC unit)."""
    import torch.nn as nn

    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == num_layers:
            return mod
    raise RuntimeError("decoder layer list not found")


def _num_layers(cfg: dict) -> int:
    return cfg.get("num_hidden_layers", cfg.get("n_layer"))


def _sdpa_ops(model, case: Case, batch: dict) -> list[str]:
    """Names of the attention kernels one forward dispatches (run outside the tracker)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: set[str] = set()

    class _Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func)
            if "attention" in name or "softmax" in name:
                seen.add(name)
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), _Ops(), _autocast(case):
        model(**batch)
    return sorted(seen)


def _snap(tracker) -> dict:
    """Tracker snapshot for the CPU device as {category: bytes} (plain strings)."""
    snap = tracker.get_tracker_snapshot("current")
    return _dev_snap(snap)


def _dev_snap(snap: dict) -> dict:
    out: dict[str, int] = {}
    for dev, d in snap.items():
        for k, v in d.items():
            key = getattr(k, "value", k)
            out[str(key)] = out.get(str(key), 0) + int(v)
    return out


def _reset_peak(tracker) -> None:
    """Start a new peak from the current memory (MemTracker does this on ``__enter__``; between
    phases of one step we do it by hand, on the two fields it keeps the peak in)."""
    current = tracker.get_tracker_snapshot("current")
    tracker._peak_mem_snap = current
    tracker._peak_mem = {dev: snap.get("Total", 0) for dev, snap in current.items()}


def _step(model, opt, batch, case: Case, tracker=None, outputs: dict | None = None) -> dict:
    """One training step; with a tracker, returns the current memory after each phase and the
    peak within it. ``outputs``: the custom loop's variable (a dict holding the previous step's
    outputs under "outputs"), replaced when this forward returns; None: the trainer loop."""
    record: dict = {}

    def mark(phase: str) -> None:
        if tracker is not None:
            record[phase] = {"current": _snap(tracker),
                             "peak": _dev_snap(tracker.get_tracker_snapshot("peak"))}
            _reset_peak(tracker)

    with _autocast(case):
        if outputs is None:
            loss = model(**batch).loss  # trainer loop: the outputs are dropped before backward
        else:
            outputs["outputs"] = model(**batch)  # the previous step's outputs are freed here
            loss = outputs["outputs"].loss
    mark("forward")
    loss.backward()
    del loss
    mark("backward")
    opt.step()
    mark("optimizer")
    opt.zero_grad(set_to_none=True)
    return record


def _result_from_record(record: dict) -> dict:
    by_phase = {p: record[p]["peak"].get("Total", 0) for p in PHASES}
    phase = max(PHASES, key=lambda p: by_phase[p])  # the first phase with the step's peak
    peak = record[phase]["peak"]
    return {
        "peak_total": by_phase[phase],
        "peak_breakdown": {k: v for k, v in peak.items() if k != "Total"},
        "peak_phase": phase,
        "after_phase": {p: record[p]["current"] for p in PHASES},
        "peak_by_phase": by_phase,
    }


def _param_bytes(model) -> tuple[int, int]:
    seen = set()
    n = b = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n += p.numel()
        b += p.numel() * p.element_size()
    return n, b


def _param_kinds(model) -> dict:
    """Bytes of trainable, frozen (16/32-bit) and 4-bit weights (with their NF4 constants), and
    PEFT's own trainable / total counts."""
    seen = set()
    out = {"trainable_bytes": 0, "frozen_bytes": 0, "quantized_bytes": 0}
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        size = p.numel() * p.element_size()
        if p.__class__.__name__ == "Params4bit":
            out["quantized_bytes"] += size
        elif p.requires_grad:
            out["trainable_bytes"] += size
        else:
            out["frozen_bytes"] += size
    out["quantized_bytes"] += _storage_bytes(_quant_state_tensors(model))
    if hasattr(model, "get_nb_trainable_parameters"):
        out["peft_trainable"], out["peft_total"] = model.get_nb_trainable_parameters()
    return out


def _measure_local(case: Case, rank: int = 0, world: int = 1) -> dict:
    """Run the case in this process (rank ``rank`` of an initialised group when world > 1)."""
    import torch
    from torch.distributed._tools.mem_tracker import MemTracker

    _set_threads()
    t0 = time.perf_counter()
    model = _build_model(case)
    n_params, param_bytes = _param_bytes(model)
    batch = _batch(case, rank)
    extra: dict = {"params": n_params, "param_bytes": param_bytes}
    # Before wrapping: an FSDP forward on one rank only would wait for collectives forever.
    # Every rank runs it where it can: bitsandbytes' first forward converts 4-bit layers' biases
    # to the compute dtype, and DDP then checks that every rank holds the same parameters.
    runs_alone = rank == 0 or case.strategy != "fsdp"
    extra["sdpa_ops"] = _sdpa_ops(model, case, batch) if runs_alone else []

    if case.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, gradient_as_bucket_view=case.gradient_as_bucket_view)
    elif case.strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh("cpu", (world,))
        if case.precision == "bf16":
            # As accelerate 1.15 FullyShardedDataParallelPlugin.set_mixed_precision("bf16") for
            # fsdp_version 2: param_dtype = reduce_dtype = output_dtype = bf16 (and accelerate
            # additionally keeps autocast around forward, as we do).
            mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16,
                                      output_dtype=torch.bfloat16)
        else:
            mp = MixedPrecisionPolicy()
        kw = {"mesh": mesh, "reshard_after_forward": case.reshard_after_forward, "mp_policy": mp}
        for layer in _decoder_layers(model, _num_layers(case.hf_config)):
            fully_shard(layer, **kw)
        fully_shard(model, **kw)

    opt = _optimizer(case, [p for p in model.parameters() if p.requires_grad])

    _step(model, opt, batch, case)  # warm-up 1: optimizer state exists; DDP rebuilds buckets
    buckets: list = []
    outputs: dict = {}
    with _CaptureCollectives(buckets) if case.strategy == "ddp" else contextlib.nullcontext():
        _step(model, opt, batch, case, outputs=outputs)  # warm-up 2: DDP's final buckets
    t1 = time.perf_counter()
    # the weights as the measured steps hold them (after bitsandbytes' first forward)
    extra.update(_param_kinds(getattr(model, "module", model)))

    if case.strategy == "fsdp":
        from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker

        tracker = FSDPMemTracker(model, opt)
        tracker.track_inputs((batch,))
    else:
        tracker = _mem_tracker() if case.method != "full" else MemTracker()
        # DDP's flat gradient buckets live for the whole run (CUDA's max_memory_allocated sees
        # them) but are allocated in C++ before the tracker starts; left alone, MemTracker
        # only meets them when the all-reduce returns them mid-backward and books them as Temp.
        # Register them up front so they are counted all step long, as "Other".
        tracker.track_external(model, opt, batch["input_ids"], batch["labels"], *buckets)
        if case.method == "qlora":
            tracker.track_quant_state(_quant_state_tensors(model))
    records = {}
    with tracker:  # custom loop, once so that its outputs are tracked tensors ...
        _step(model, opt, batch, case, outputs=outputs)
    tracker.reset_mod_stats()  # FSDPMemTracker measures one iteration per stats
    with tracker:  # ... when the measured step starts (entering resets the peak)
        records["custom"] = _step(model, opt, batch, case, tracker, outputs=outputs)
    outputs.clear()
    tracker.reset_mod_stats()
    with tracker:
        records["trainer"] = _step(model, opt, batch, case, tracker)
    t2 = time.perf_counter()

    res = {"loops": {loop: _result_from_record(records[loop]) for loop in LOOPS}}
    if case.strategy == "ddp":
        res["ddp_buckets"] = _ddp_bucket_info(model)
        res["ddp_buckets"]["tracked_as_other_bytes"] = _storage_bytes(buckets)
    res.update(extra)
    res["rank"] = rank
    res["seconds"] = {"build_and_warmup": round(t1 - t0, 2), "measured_steps": round(t2 - t1, 2)}
    return res


class _CaptureCollectives:
    """Dispatch mode that keeps the tensors all-reduce ops return (DDP's bucket buffers)."""

    def __init__(self, out: list) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                res = func(*args, **(kwargs or {}))
                if "allreduce" in str(func):
                    import torch
                    from torch.utils._pytree import tree_flatten

                    out.extend(t for t in tree_flatten(res)[0] if isinstance(t, torch.Tensor))
                return res

        self._mode = _Mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def _storage_bytes(tensors: list) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def _ddp_bucket_info(ddp_model) -> dict:
    """DDP's flat gradient buckets are allocated in C++ at construction (and on the rebuild after
    the first step), before the tracker starts: MemTracker only meets them when an all-reduce
    returns them. Report their size from DDP's logging data and by summing trainable bytes."""
    info: dict = {}
    computed = 0
    for p in ddp_model.module.parameters():
        if p.requires_grad:
            computed += p.numel() * p.element_size()
    info["computed_bytes"] = computed if not ddp_model.gradient_as_bucket_view else 0
    try:
        data = ddp_model._get_ddp_logging_data()
        sizes = data.get("bucket_sizes")
        if isinstance(sizes, str):
            parsed = [int(s) for s in sizes.replace(" ", "").split(",") if s]
        else:
            parsed = list(sizes or [])
        info["logging_bucket_sizes"] = parsed
        info["logging_bytes"] = int(sum(parsed))
        info["bucket_cap_bytes"] = int(data.get("bucket_cap_bytes", 0))
    except Exception as e:  # noqa: BLE001 - logging data is best effort
        info["logging_error"] = repr(e)
    return info


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_worker(rank: int, world: int, port: int, case_json: str, out_dir: str) -> None:
    import faulthandler
    import sys

    import torch.distributed as dist

    # A hung collective must not hang the suite: dump every thread's stack and exit.
    faulthandler.dump_traceback_later(float(os.environ.get("TRAINWIZ_VALIDATION_TIMEOUT", "600")),
                                      exit=True, file=sys.stderr)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        case = Case(**{k: v for k, v in json.loads(case_json).items() if k != "sharding"})
        res = _measure_local(case, rank, world)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(res, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def measure(case: Case) -> dict:
    """Measure ``case``; return rank 0's results per loop (``loops[loop]``: ``peak_total``, its
    breakdown at the peak ``peak_breakdown`` (tracker categories → bytes), ``peak_phase``,
    ``peak_by_phase``) and details."""
    import torch

    t0 = time.perf_counter()
    if case.num_gpus == 1 and case.strategy == "single":
        res = _measure_local(case)
    else:
        import torch.multiprocessing as mp

        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_dist_worker, args=(case.num_gpus, _free_port(), json.dumps(case.to_json()),
                                         tmp), nprocs=case.num_gpus, join=True)
            ranks = []
            for r in range(case.num_gpus):
                with open(os.path.join(tmp, f"rank{r}.json")) as f:
                    ranks.append(json.load(f))
        res = dict(ranks[0])
        res["ranks"] = [{"rank": r["rank"], "loops": {
            loop: {k: r["loops"][loop][k] for k in ("peak_total", "peak_breakdown", "peak_phase")}
            for loop in LOOPS}} for r in ranks]
        res["rank_spread"] = max(
            abs(r["loops"][loop]["peak_total"] - res["loops"][loop]["peak_total"])
            / max(res["loops"][loop]["peak_total"], 1) for r in ranks for loop in LOOPS)
    res["case"] = case.name
    res["torch"] = torch.__version__
    res["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return res


def activation_histogram(case: Case) -> dict[int, int]:
    """Diagnostic for single-process cases: the storages MemTracker books as activations at the
    end of the measured step's forward, as {bytes per storage: count}. Uses the tracker's
    private storage table (``_WINFO``), so it is a debugging aid, not part of ``measure``."""
    from collections import Counter

    from torch.distributed._tools.mem_tracker import MemTracker

    if case.strategy != "single":
        raise ValueError("activation_histogram runs single-process cases only")
    _set_threads()
    model = _build_model(case)
    batch = _batch(case)
    opt = _optimizer(case, [p for p in model.parameters() if p.requires_grad])
    for _ in range(2):
        _step(model, opt, batch, case)
    tracker = _mem_tracker() if case.method != "full" else MemTracker()
    tracker.track_external(model, opt, batch["input_ids"], batch["labels"])
    hist: Counter = Counter()
    with tracker:
        with _autocast(case):
            loss = model(**batch).loss
        for winfo, _ in list(tracker._WINFO.values()):
            if getattr(winfo.reftype, "value", winfo.reftype) == "Activation":
                hist[int(winfo.mem_consumed)] += 1
        loss.backward()
    return dict(hist)
