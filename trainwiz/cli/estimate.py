"""`trainwiz estimate MODEL [options]`: will this training config fit, and what makes it fit."""

from __future__ import annotations

import dataclasses
import json

from trainwiz.cli import simulate_spec
from trainwiz.cli.render import print_estimate
from trainwiz.errors import UsageError
from trainwiz.estimator.accelerate_rule import table_rows
from trainwiz.estimator.catalog import catalog, catalog_names, model_from_params, resolve_model
from trainwiz.estimator.timing import suggestion_time_text, summary_lines, time_hardware, time_plan
from trainwiz.estimator.types import TrainConfig
from trainwiz.hardware import detect
from trainwiz.plan import Box, Gpu, Plan, box_from_gpus, default_seq_len, default_strategy
from trainwiz.units import accelerate_bytes, parse_count, parse_rate, parse_size


def run(args) -> int:
    if args.list:
        return _print_catalog(args)
    if args.params is not None and args.model:
        raise UsageError("give either MODEL or --params N, not both")
    if args.params is None and not args.model:
        raise UsageError("name a model (e.g. `trainwiz estimate llama-3-8b`), or use --params N; "
                         f"catalog: {', '.join(catalog_names())}")
    model = model_from_params(args.params) if args.params is not None else resolve_model(args.model)
    length = _training_length(args)
    _check_options(args)
    detection = detect(simulate_spec(args))  # the GPU model also times the run
    detected = list(detection.gpus)
    plan = _plan(args, detection, length, model)
    if args.table:
        return _print_accelerate_table(model)
    run_gpus = [g for g in detected[:plan.config.num_gpus] if plan.box.here]  # those it uses
    no_bf16 = [g for g in run_gpus if g.supports_bf16 is False]
    result = plan.estimate(model, available_gpus=len(detected) or None)
    notes = _input_notes(model, plan.config, detected, args.seq_len is not None)
    if plan.config.precision in ("bf16", "bf16-pure") and no_bf16:
        g = no_bf16[0]
        notes = (f"GPU {g.index} ({g.name}, compute capability {g.compute_capability}) has no "
                 "bf16: use --precision fp16",) + notes
    est = dataclasses.replace(result.estimate, notes=result.estimate.notes + notes,
                              suggestions=result.suggestions)
    per_gpu = _per_gpu_fit(result, run_gpus)
    time_est, timed = _time_plan(args, est, detected, detection if detected else None, length)
    if args.json:
        data = est.to_json()
        if per_gpu:
            data["gpus"] = per_gpu
        data["time"] = time_est.to_json()
        data["suggestions"] = [t.to_json() for t in timed]
        print(json.dumps(data, indent=2))
        return 0
    est = dataclasses.replace(est, suggestions=tuple(t.suggestion for t in timed))
    print_estimate(est, _source_line(detection, run_gpus), per_gpu=per_gpu,
                   time_lines=summary_lines(time_est, est.fits, network_option="--network"),
                   suggestion_times=[suggestion_time_text(t, time_est) for t in timed])
    return 0


def _plan(args, detection, length: dict, model) -> Plan:
    """The plan the options describe, on the detected or simulated GPUs (or, with --gpu-memory,
    on GPUs of that size): --num-gpus counts every GPU of the run, --num-nodes the machines.
    What is not given is the plan model's default (the app's and ``config --plain``'s)."""
    detected = detection.gpus
    num_gpus = args.num_gpus or (1 if args.strategy == "single" else max(len(detected), 1))
    if args.gpu_memory:  # the size given wins over what the GPUs report
        size = parse_size(args.gpu_memory, least=64 << 20)  # no GPU has less than 64 MiB
        box = Box(tuple(Gpu(i, "GPU", size) for i in range(num_gpus)), "--gpu-memory",
                  here=False)
    else:
        box = box_from_gpus(detected, simulated=detection.source == "simulated")
    run_gpus = detected[:num_gpus] if box.here else []
    if num_gpus % args.num_nodes:
        given = f"--num-gpus {num_gpus}" if args.num_gpus else \
            f"the default of {num_gpus} GPU{'s' if num_gpus != 1 else ''} (--num-gpus)"
        raise UsageError(f"--num-nodes {args.num_nodes}: {given} does not split evenly over "
                         f"{args.num_nodes} machines; --num-gpus counts every GPU of the run, so "
                         f"give a multiple of {args.num_nodes}")
    no_bf16 = any(g.supports_bf16 is False for g in run_gpus)
    config = TrainConfig(
        strategy=args.strategy or default_strategy(num_gpus), num_gpus=num_gpus,
        sharding=args.sharding, num_nodes=args.num_nodes,
        precision=args.precision or ("fp16" if no_bf16 else "bf16"), optimizer=args.optimizer,
        fused_optimizer=args.fused_optimizer, batch_size=args.batch_size,
        seq_len=default_seq_len(model) if args.seq_len is None else args.seq_len,
        grad_accum=args.grad_accum,
        activation_checkpointing=args.activation_checkpointing,
        offload_params=args.offload_params, attention=args.attention,
        gradient_as_bucket_view=args.gradient_as_bucket_view,
        loop=args.loop,
        method=args.method, **{k: v for k, v in (("lora_rank", args.lora_rank),
                                                 ("lora_targets", args.lora_targets))
                               if v is not None},
    )
    return Plan(box=box, config=config, machines=args.num_nodes,
                model=f"params:{args.params}" if args.params is not None else args.model,
                tokens=length.get("tokens"), steps=length.get("steps"))


def _check_options(args) -> None:
    """Options that are each valid but not together: one line naming them (exit 2), never one
    quietly ignored."""
    if args.method == "full":
        given = [f for f, v in (("--lora-rank", args.lora_rank), ("--lora-targets", args.lora_targets))
                 if v is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to LoRA adapters: add --method "
                             "lora or --method qlora (without them the plan is full fine-tuning)")


def _source_line(detection, run_gpus) -> str | None:
    """``against 2 simulated NVIDIA H100 80GB HBM3`` (or the mix, sized for the smallest)."""
    if not run_gpus:
        return None
    kind = "simulated" if detection.source == "simulated" else "detected"
    names = list(dict.fromkeys(g.name for g in run_gpus))
    if len(names) == 1:
        return f"against {len(run_gpus)} {kind} {names[0]}"
    counts = ", ".join(f"{sum(g.name == n for g in run_gpus)}× {n}" for n in names)
    return f"against {len(run_gpus)} {kind} GPUs ({counts}; sized for the smallest)"


def _input_notes(model, config, detected, seq_given: bool) -> tuple[str, ...]:
    """What in the request the model or the box cannot give, said next to the estimate."""
    notes = []
    if seq_given and model.max_position and config.seq_len > model.max_position:
        notes.append(f"{model.name} has {model.max_position:,} positions; --seq-len "
                     f"{config.seq_len:,} is longer than it can take")
    elif not seq_given and config.seq_len != default_seq_len():
        notes.append(f"seq {config.seq_len:,}: {model.name}'s maximum (--seq-len for another)")
    if detected and config.num_gpus > len(detected):
        notes.append(f"this box has {len(detected)} GPU{'s' if len(detected) != 1 else ''}; "
                     f"the estimate is for {config.num_gpus} (more machines or a bigger box)")
    return tuple(notes)


def _training_length(args) -> dict:
    """--tokens / --steps as numbers (one line and exit 2 when they cannot be read)."""
    if args.tokens is not None and args.steps is not None:
        raise UsageError("give the training length as --tokens N or --steps N, not both")
    for key, option, most, example in (("tokens", "--tokens", MAX_TOKENS, "1e8 or 2B"),
                                       ("steps", "--steps", MAX_STEPS, "5000 or 20K")):
        text = getattr(args, key)
        if text is None:
            continue
        value = parse_count(text, option)
        whole = str(text).strip().replace("_", "").replace(",", "")
        try:  # a fraction of a token or a step is a typo (1.5 for 1.5B), not a length
            fraction = float(whole) != int(float(whole))
        except ValueError:  # a suffix (2B, 1.5M): a whole count
            fraction = False
        if fraction or value > most:
            raise UsageError(f"{option} must be a whole number from 1 to {most:.0e} (e.g. "
                             f"{example}), got {text!r}".replace("e+", "e"))
        return {key: value}
    return {}


MAX_TOKENS = 10**15  # ~70× the largest published pretraining run (15T tokens)
MAX_STEPS = 10**10


def _time_plan(args, est, detected, detection, length: dict):
    """The time of the config and its suggestions on the GPUs the run would use."""
    network = parse_rate(args.network) if args.network else None
    run = detected[:est.config.num_gpus]
    topology = detection.extra.get("topology") if detection is not None else None
    hardware = time_hardware(run, topology=topology, network=network)
    return time_plan(est, hardware, available_gpus=len(detected) or None, **length)


def _per_gpu_fit(result, gpus) -> list[dict]:
    """The plan's verdict on each GPU of the run (they differ on mixed or busy boxes), with what
    each one reports."""
    reading = {g.index: g for g in gpus}
    return [{"index": f.gpu.index, "name": f.gpu.name, "memory_total": f.gpu.memory_total,
             "memory_free": reading[f.gpu.index].memory_free, "fits": f.fits,
             "verdict": f.verdict}
            for f in result.gpus if f.machine == 0 and f.gpu.index in reading]


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

    def fmt(v, key=""):
        if v is None and key == "largest_layer":  # a bare parameter count has no layers
            return "unknown"
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
            table.add_row(row["dtype"], *[fmt(row[k], k) for k in keys])
    else:  # narrow terminal: one row per quantity, one column per dtype
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("")
        for row in rows:
            table.add_column(row["dtype"], justify="right", no_wrap=True)
        for col, key in zip(columns, keys):
            table.add_row(col, *[fmt(row[key], key) for row in rows])
    console.print(table)
    console.print("This rule counts the bare model (no task head) at batch size 1 and no activations; "
                  "`trainwiz estimate` without --table gives the full per-GPU estimate.")
    return 0
