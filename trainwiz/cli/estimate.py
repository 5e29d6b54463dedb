"""`trainwiz estimate MODEL [options]`: will this training config fit, and what makes it fit."""

from __future__ import annotations

from trainwiz.cli import simulate_spec
from trainwiz.cli.render import print_estimate
from trainwiz.errors import UsageError
from trainwiz.estimator import TrainConfig, estimate
from trainwiz.estimator.accelerate_rule import table_rows
from trainwiz.estimator.catalog import catalog, catalog_names, model_from_params, resolve_model
from trainwiz.estimator.memory import fit_on
from trainwiz.estimator.timing import suggestion_time_text, summary_lines, time_hardware, time_plan
from trainwiz.hardware import detect
from trainwiz.plan import Plan, box_from_gpus
from trainwiz.units import accelerate_bytes, parse_count, parse_rate, parse_size


def run(args) -> int:
    import dataclasses

    if args.list:
        return _print_catalog(args)
    if args.params is not None and args.model:
        raise UsageError("give either MODEL or --params N, not both")
    if args.params is None and not args.model:
        raise UsageError("name a model (e.g. `trainwiz estimate llama-3-8b`), or use --params N; "
                         f"catalog: {', '.join(catalog_names())}")
    model = model_from_params(args.params) if args.params is not None else resolve_model(args.model)
    length = _training_length(args)

    gpu_memory = parse_size(args.gpu_memory) if args.gpu_memory else None
    gpu_free = None
    detection = detect(simulate_spec(args))  # the GPU model also times the run
    detected = list(detection.gpus)
    if args.num_gpus is not None and args.num_gpus < 1:
        raise UsageError(f"--num-gpus must be a whole number of at least 1, got {args.num_gpus}")
    num_gpus = args.num_gpus or (1 if args.strategy == "single" else max(len(detected), 1))
    run_gpus = detected[:num_gpus] if gpu_memory is None else []  # the GPUs the run would use
    source_line = None
    if run_gpus:
        totals = [g.memory_total for g in run_gpus if g.memory_total]
        if totals:
            gpu_memory = min(totals)
            frees = [g.memory_free for g in run_gpus if g.memory_free is not None]
            if frees and min(frees) < gpu_memory * 0.98:  # busy: judge against what is free
                gpu_free = min(frees)
        kind = "simulated" if detection.source == "simulated" else "detected"
        names = list(dict.fromkeys(g.name for g in run_gpus))
        if len(names) == 1:
            source_line = f"against {len(run_gpus)} {kind} {names[0]}"
        else:  # a mixed box: the verdict is for the smallest
            counts = ", ".join(f"{sum(g.name == n for g in run_gpus)}× {n}" for n in names)
            source_line = f"against {len(run_gpus)} {kind} GPUs ({counts}; sized for the smallest)"
    no_bf16 = [g for g in run_gpus if g.supports_bf16 is False]
    precision = args.precision or ("fp16" if no_bf16 else "bf16")
    strategy = args.strategy or ("single" if num_gpus == 1 else "fsdp")
    config = TrainConfig(
        strategy=strategy, num_gpus=num_gpus, sharding=args.sharding, num_nodes=args.num_nodes,
        precision=precision, optimizer=args.optimizer, fused_optimizer=args.fused_optimizer,
        batch_size=args.batch_size, seq_len=args.seq_len or 2048, grad_accum=args.grad_accum,
        activation_checkpointing=args.activation_checkpointing,
        offload_params=args.offload_params, attention=args.attention,
        gradient_as_bucket_view=args.gradient_as_bucket_view,
        loop=args.loop,
        method=args.method, lora_rank=args.lora_rank, lora_targets=args.lora_targets,
    )
    if args.table:
        return _print_accelerate_table(model)
    est = estimate(model, config, gpu_memory=gpu_memory, gpu_free=gpu_free,
                   available_gpus=len(detected) or None)
    if precision in ("bf16", "bf16-pure") and no_bf16:
        g = no_bf16[0]
        est = dataclasses.replace(est, notes=est.notes + (
            f"GPU {g.index} ({g.name}, compute capability {g.compute_capability}) has no bf16: "
            "use --precision fp16",))
    est = dataclasses.replace(est, notes=est.notes + _input_notes(model, config, detected,
                                                                  args.seq_len is not None))
    if run_gpus and len(detected) > 1 and est.verdict in ("does not fit", "tight"):
        # a mixed or busy box: the GPUs that fit, by id (the app's plan offers the same)
        box = box_from_gpus(detected, simulated=detection.source == "simulated")
        subset = Plan(box=box, config=config).gpu_subset_suggestion(model)
        if subset is not None:
            est = dataclasses.replace(est, suggestions=est.suggestions + (subset,))
    per_gpu = _per_gpu_fit(est, run_gpus)
    time_est, timed = _time_plan(args, est, detected, detection if detected else None, length)
    if args.json:
        import json

        data = est.to_json()
        if per_gpu:
            data["gpus"] = per_gpu
        data["time"] = time_est.to_json()
        data["suggestions"] = [t.to_json() for t in timed]
        print(json.dumps(data, indent=2))
        return 0
    est = dataclasses.replace(est, suggestions=tuple(t.suggestion for t in timed))
    print_estimate(est, source_line, per_gpu=per_gpu, time_lines=summary_lines(time_est, est.fits),
                   suggestion_times=[suggestion_time_text(t) for t in timed])
    return 0


def _input_notes(model, config, detected, seq_given: bool) -> tuple[str, ...]:
    """What in the request the model or the box cannot give, said next to the estimate."""
    notes = []
    if seq_given and model.max_position and config.seq_len > model.max_position:
        notes.append(f"{model.name} has {model.max_position:,} positions; --seq-len "
                     f"{config.seq_len:,} is longer than it can take")
    if detected and config.num_gpus > len(detected):
        notes.append(f"this box has {len(detected)} GPU{'s' if len(detected) != 1 else ''}; "
                     f"the estimate is for {config.num_gpus} (more machines or a bigger box)")
    return tuple(notes)


def _training_length(args) -> dict:
    """--tokens / --steps as numbers (one line and exit 2 when they cannot be read)."""
    if args.tokens is not None and args.steps is not None:
        raise UsageError("give the training length as --tokens N or --steps N, not both")
    if args.tokens is not None:
        return {"tokens": parse_count(args.tokens, "--tokens")}
    if args.steps is not None:
        return {"steps": parse_count(args.steps, "--steps")}
    return {}


def _time_plan(args, est, detected, detection, length: dict):
    """The time of the config and its suggestions on the GPUs the run would use."""
    network = parse_rate(args.network) if args.network else None
    run = detected[:est.config.num_gpus]
    topology = detection.extra.get("topology") if detection is not None else None
    hardware = time_hardware(run, topology=topology, network=network)
    return time_plan(est, hardware, available_gpus=len(detected) or None, **length)


def _per_gpu_fit(est, gpus) -> list[dict]:
    """The verdict on each GPU of the run (they differ on mixed or busy boxes)."""
    out = []
    for g in gpus:
        busy = g.memory_free is not None and g.memory_total and g.memory_free < 0.98 * g.memory_total
        fits, verdict = fit_on(est.per_gpu.total, g.memory_total, g.memory_free if busy else None)
        out.append({"index": g.index, "name": g.name, "memory_total": g.memory_total,
                    "memory_free": g.memory_free, "fits": fits, "verdict": verdict})
    return out


def _print_catalog(args) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    wide = console.width >= 110  # the Hugging Face id column only where it fits
    from rich import box

    cols = ["name", "family", "parameters", "layers", "hidden", "heads(kv)", "vocab"]
    rows = []
    for name, entry in sorted(catalog().items()):
        m = resolve_model(name)
        rows.append([name, m.family, f"{m.params:,}", str(m.num_layers), str(m.hidden_size),
                     f"{m.num_heads} ({m.num_kv_heads})", f"{m.vocab_size:,}", entry.get("hf", "")])
    cols.append("Hugging Face id")
    keep = [c for c in cols if wide or c not in ("hidden", "heads(kv)", "Hugging Face id")]
    rows = [[r[cols.index(c)] for c in keep] for r in rows]
    cols = keep
    table = Table(title="trainwiz model catalog", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, padding=(0, 1))
    for i, col in enumerate(cols):  # every cell whole: a name must be readable to be typed
        table.add_column(col, no_wrap=True, min_width=max(len(col), *(len(r[i]) for r in rows)),
                         justify="right" if col in ("parameters", "layers", "hidden", "vocab") else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0


def _print_accelerate_table(model) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def fmt(v):
        return "N/A" if v is None or v == -1 else accelerate_bytes(v)

    columns = ("Largest Layer", "Total Size", "Model", "Gradient calculation", "Backward pass",
               "Optimizer step", "Training using Adam")
    keys = ("largest_layer", "total_size", "model", "gradients", "optimizer", "step", "training_peak")
    rows = table_rows(model)
    title = f"Memory Usage for loading `{model.name}` (accelerate estimate-memory's rule)"
    console = Console()
    if console.width >= 110:  # accelerate's layout: one row per dtype
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("dtype")
        for col in columns:
            table.add_column(col, justify="right", no_wrap=True)
        for row in rows:
            table.add_row(row["dtype"], *[fmt(row[k]) for k in keys])
    else:  # narrow terminal: one row per quantity, one column per dtype
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("")
        for row in rows:
            table.add_column(row["dtype"], justify="right", no_wrap=True)
        for col, key in zip(columns, keys):
            table.add_row(col, *[fmt(row[key]) for row in rows])
    console.print(table)
    console.print("This rule counts the bare model (no task head) at batch size 1 and no activations; "
                  "`trainwiz estimate` without --table gives the full per-GPU estimate.")
    return 0
