"""``trainwiz gpus --slurm``: the Slurm cluster's partitions as hardware to plan for.

One row per partition: nodes and their states, CPUs and memory per node, GPUs per node and their
type (from the ``gpu`` generic resource), the GPU memory when the type names one card trainwiz
knows (else unknown), and the ``trainwiz estimate`` options that plan for the whole partition.
No Slurm on this machine: one line saying so, exit 0 (``[]`` with --json).
"""

from __future__ import annotations

from trainwiz.hardware.slurm import SlurmMissing, partition_plan, partitions


def _most(values) -> str:
    """A per-node figure: one value, or the range when the nodes differ."""
    known = sorted({v for v in values if v is not None})
    if not known:
        return "unknown"
    return str(known[0]) if len(known) == 1 else f"{known[0]}-{known[-1]}"


def _gib(n: int | None) -> str:
    return "unknown" if n is None else f"{n / (1 << 30):.0f} GiB"


def run_slurm(args) -> int:
    import json
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    try:
        parts = partitions()
    except SlurmMissing as exc:
        print(f"trainwiz: {exc}", file=sys.stderr)
        if args.json:
            print("[]")
        return 0
    if args.json:
        print(json.dumps([p.to_json() for p in parts], indent=2))
        return 0
    if not parts:
        print("trainwiz: Slurm reports no partitions", file=sys.stderr)
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for head in ("PARTITION", "NODES", "STATES", "CPUS", "MEMORY", "GPUS/NODE", "GPU MEMORY"):
        table.add_column(head)
    plans = []
    for p in parts:
        plan = partition_plan(p)
        states = ", ".join(f"{n} {s}" for s, n in sorted(p.states.items()))
        gpus = "0" if not p.gpus_per_node else (
            f"{p.gpus_per_node} x {p.gpu_type}" if p.gpu_type else str(p.gpus_per_node))
        mem = (_gib(plan.gpu_memory) + (f" ({plan.preset})" if plan.preset else "")) \
            if p.gpus_per_node else "-"
        memories = [n.memory for n in p.nodes]
        table.add_row(*(Text(str(c)) for c in (
            p.name + ("*" if p.default else ""), len(p.nodes), states,
            _most(n.cpus for n in p.nodes),
            _most(f"{m / (1 << 30):.1f}" if m else None for m in memories) + " GiB"
            if any(memories) else "unknown", gpus, mem)))
        if p.gpus_per_node:
            plans.append(f"plan for {p.name} ({len(p.nodes)} x {p.gpus_per_node} GPUs): "
                         "trainwiz estimate MODEL " + " ".join(plan.estimate_options())
                         + ("" if plan.gpu_memory else " --gpu-memory SIZE"))
    console = Console()
    console.print(table)
    console.print(Text("* the default partition; CPUS and MEMORY per node"))
    for line in plans:
        console.print(Text(line))
    return 0
