"""Rich renderings of estimator results for the command line (not used by the app)."""

from __future__ import annotations

from trainwiz.estimator.suggest import METHOD_NOTE
from trainwiz.estimator.types import LOOP_TEXT, PRECISION_TEXT, Estimate, verdict_of
from trainwiz.units import format_bytes


def describe_config(est: Estimate) -> str:
    c = est.config
    parts = [c.strategy if c.strategy != "fsdp" else f"fsdp {c.sharding}"]
    parts.append(f"{c.num_gpus} GPU" + ("s" if c.num_gpus > 1 else ""))
    parts.append(PRECISION_TEXT.get(c.precision, c.precision))
    parts.append(c.optimizer + (" (fused)" if c.fused_optimizer else ""))
    parts.append(f"micro-batch {c.batch_size} × seq {c.seq_len}")
    if c.method != "full":
        parts.append(f"{'QLoRA (NF4)' if c.method == 'qlora' else 'LoRA'} r{c.lora_rank} "
                     f"{c.lora_targets}" + (f" dropout {c.lora_dropout:g}" if c.lora_dropout else ""))
    if c.grad_accum > 1:
        parts.append(f"accumulate {c.grad_accum}")
    if c.activation_checkpointing:
        parts.append("activation checkpointing")
    if c.offload_params:
        parts.append("CPU offload")
    if c.attention != "sdpa":
        parts.append(f"{c.attention} attention")
    return ", ".join(parts)


def verdict_line(est: Estimate) -> str:
    """One line, words not just colour: 'fits: 61.2 GiB of 80.0 GiB (77%)'."""
    total = est.per_gpu.total
    if est.gpu_memory is None:
        return (f"needs {format_bytes(total)} per GPU (no GPU memory known: pass --gpu-memory "
                "or --simulate to get a verdict)")
    usable = est.gpu_memory if est.gpu_free is None else min(est.gpu_memory, est.gpu_free)
    what = "free" if est.gpu_free is not None and est.gpu_free < est.gpu_memory else "per GPU"
    pct = 100 * total / usable if usable else float("inf")
    return f"{est.verdict}: needs {format_bytes(total)} of {format_bytes(usable)} {what} ({pct:.0f}%)"


def print_estimate(est: Estimate, source_line: str | None = None, console=None,
                   per_gpu: list[dict] | None = None, time_lines: list[str] | None = None,
                   suggestion_times: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(soft_wrap=True)  # piped: a suggestion's flags stay on one line
    m = est.model
    console.print(Text.assemble((f"{m.name}", "bold"), f"  {m.params:,} parameters",
                                f"  ({m.family})" if m.family != "unknown" else ""))
    if est.trainable_params is not None:  # PEFT's print_trainable_parameters, word for word
        total = est.total_params or m.params
        console.print(f"trainable params: {est.trainable_params:,} || all params: {total:,} || "
                      f"trainable%: {100 * est.trainable_params / total:.4f}")
    console.print(describe_config(est) + (f"  —  {source_line}" if source_line else ""))
    console.print(f"loop: {LOOP_TEXT.get(est.config.loop, est.config.loop)}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("per GPU, at the peak")
    table.add_column("memory", justify="right")
    table.add_column("share", justify="right")
    pg = est.per_gpu
    if pg.frozen_params or pg.quantized_params or pg.adapter_params:  # the parts of parameters
        rows = [("frozen weights", pg.frozen_params), ("4-bit weights (NF4)", pg.quantized_params),
                ("LoRA adapters", pg.adapter_params)]
        rows = [r for r in rows if r[1] or r[0] == "LoRA adapters"]
        other = pg.params - sum(v for _, v in rows)
        if other:
            rows.append(("other parameters", other))
    else:
        rows = [("parameters", pg.params)]
    rows += [("gradients", pg.grads), ("optimizer state", pg.optimizer),
             ("activations", pg.activations), ("temporaries", pg.temporary)]
    unknown = {"activations": "activations", "temporaries": "temporary"}
    for label, value in rows:
        if unknown.get(label) in est.not_estimated:  # never 0 B for what was not estimated
            table.add_row(label, "unknown", "")
            continue
        share = f"{100 * value / pg.total:.0f}%" if pg.total else ""
        table.add_row(label, format_bytes(value), share)
    table.add_row(Text("peak allocated", style="bold"), Text(format_bytes(pg.peak_allocated), style="bold"),
                  "~ torch.cuda.max_memory_allocated")
    table.add_row("CUDA context, NCCL, allocator", format_bytes(pg.overhead),
                  f"{100 * pg.overhead / pg.total:.0f}%" if pg.total else "")
    table.add_row(Text("total", style="bold"), Text(format_bytes(pg.total), style="bold"),
                  "must fit (at least)" if est.not_estimated else "must fit")
    console.print(table)
    peak_at = est.terms.get("peak_at")
    if peak_at:
        console.print(f"peak during: {peak_at}")
    console.print(Text(verdict_line(est), style=verdict_of(est.verdict).style))
    if per_gpu and len({g["verdict"] for g in per_gpu}) > 1:  # a mixed or partly busy box
        for g in per_gpu:
            free = f", {format_bytes(g['memory_free'])} free" if g["memory_free"] is not None else ""
            console.print(Text(f"  GPU {g['index']} {g['name']} ({format_bytes(g['memory_total'])}{free}): "
                               f"{g['verdict']}", style=verdict_of(g["verdict"]).style))
    for line in time_lines or ():
        console.print(Text(line))
    if est.host_ram:
        console.print(f"host RAM per machine: about {format_bytes(est.host_ram)}")
    for note in est.notes:
        console.print(Text(f"note: {note}", style="dim"))
    if est.suggestions and est.verdict in ("does not fit", "tight"):
        console.print(Text("What would make it fit:" if est.verdict == "does not fit"
                           else "What would leave more room:", style="bold"))
        for i, s in enumerate(est.suggestions, 1):
            when = suggestion_times[i - 1] if suggestion_times and suggestion_times[i - 1] else ""
            console.print(Text.assemble(f"  {i}. {s.note} → {format_bytes(s.total)}, ",
                                        (s.verdict_text, verdict_of(s.verdict).style),
                                        f", {when}" if when else ""))
            console.print(Text(f"     {as_flags(s.change)}", style="dim"))
        if any(s.method_change for s in est.suggestions):
            console.print(Text(METHOD_NOTE, style="dim"))


def as_flags(change: dict) -> str:
    """A suggestion as the `trainwiz estimate` options that apply it."""
    flags = []
    for key, value in change.items():
        if key == "gpu_ids":  # a subset of this box's GPUs: what a run there is given
            ids = ",".join(map(str, value))
            flags.insert(0, f"CUDA_VISIBLE_DEVICES={ids} … --num-gpus {len(value)}")
            continue
        if key == "num_gpus" and "gpu_ids" in change:  # said once, with the GPU ids
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False:
            flags.append(f"{flag} {value}")
    return " ".join(flags)
