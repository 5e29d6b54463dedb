"""``trainwiz gpus``: what GPUs this box has (or a simulated one would have), right now."""

from __future__ import annotations

from trainwiz.cli import simulate_spec
from trainwiz.cli.gpus_slurm import run_slurm
from trainwiz.errors import UsageError
from trainwiz.hardware import GpuSampler, detect, host_info, visible_gpus
from trainwiz.hardware.visible import mixed_models
from trainwiz.units import format_bytes


# -- formatting -------------------------------------------------------------------------------

NA = "N/A"


def _can_encode(text: str) -> bool:
    import sys

    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _unicode() -> bool:
    """Whether stdout takes block and degree glyphs; else plain ASCII (PYTHONIOENCODING=ascii)."""
    return _can_encode("█░°·…")


def _sep() -> str:
    return " · " if _unicode() else " | "


def short_name(name: str) -> str:
    """"NVIDIA GeForce RTX 4090" -> "RTX 4090": the vendor words add nothing in a table."""
    for prefix in ("NVIDIA ", "GeForce "):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def _bar(used: int | None, total: int | None, width: int = 8):
    from rich.text import Text

    if used is None or not total:
        return Text(NA, style="dim")
    frac = max(0.0, min(1.0, used / total))
    filled = round(frac * width)
    style = "green" if frac < 0.7 else "yellow" if frac < 0.9 else "bold red"
    full, empty = ("█", "░") if _unicode() else ("#", ".")
    bar = Text(full * filled, style=style)
    bar.append(empty * (width - filled), style="dim")
    bar.append(f" {frac * 100:3.0f}%")
    return bar


def _processes(gpu):
    """The biggest process on the GPU, as Text: its name is the process's own, never markup."""
    from rich.text import Text

    procs = gpu.processes
    if not procs:
        return Text("-")
    shown = []
    for p in sorted(procs, key=lambda p: -(p.memory_used or 0))[:1]:
        label = f"{p.pid}"
        if p.name:
            label += f" {p.name[:12]}"
        if p.memory_used is not None:
            label += f" {format_bytes(p.memory_used)}"
        shown.append(label)
    more = len(procs) - len(shown)
    return Text(", ".join(shown) + (f" +{more}" if more > 0 else ""))


def _num(value, fmt: str) -> str:
    return NA if value is None else fmt.format(value)


def gpu_table(gpus, visible_indices: set[int] | None = None):
    """A rich Table of GPUs (index, name, memory bar, used/total, util, temp, power, processes)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, collapse_padding=True, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("GPU", no_wrap=True, overflow="ellipsis" if _unicode() else "crop",
                     max_width=20)
    table.add_column("Memory", no_wrap=True)
    table.add_column("Mem GiB", justify="right", no_wrap=True)
    table.add_column("Util", justify="right", no_wrap=True)
    table.add_column("Temp", justify="right", no_wrap=True)
    table.add_column("Power W", justify="right", no_wrap=True)
    table.add_column("Processes", overflow="fold", min_width=10)
    degrees = "°C" if _unicode() else "C"
    for g in gpus:
        name = Text(short_name(g.name))
        if g.mig:
            name.append(" [MIG]", style="cyan")
        power = NA
        if g.power_draw is not None:
            power = f"{g.power_draw:.0f}" + (f"/{g.power_limit:.0f}" if g.power_limit else "")
        dim = visible_indices is not None and g.index not in visible_indices
        memory = _bar(g.memory_used, g.memory_total)
        if g.error:
            memory = Text(g.error, style="bold red")
        amounts = (f"{format_bytes(g.memory_used, unit='GiB', bare=True)}/"
                   f"{format_bytes(g.memory_total, unit='GiB', bare=True)}")
        if g.memory_used is None and g.memory_total is None:
            amounts = format_bytes(None)
        table.add_row(
            str(g.index), name, memory, amounts,
            _num(g.utilization, "{:.0f}%"), _num(g.temperature, "{:.0f}" + degrees), power,
            _processes(g), style="dim" if dim else None)
    return table


def header_lines(detection, gpus) -> list[str]:
    """The lines above the table: where the facts come from, the host, what a run will see."""
    import os

    lines = []
    if detection.source == "simulated":
        lines.append(detection.message or "Planning mode (simulated GPUs).")
    else:
        parts = [f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''} (NVML)"]
        if detection.driver_version:
            parts.append(f"driver {detection.driver_version}")
        if detection.cuda_driver_version:
            parts.append(f"CUDA {detection.cuda_driver_version}")
        lines.append(_sep().join(parts))
    h = detection.host
    host = f"Host: {h.cpu_count if h.cpu_count is not None else NA} CPUs"
    if h.ram_total is not None:
        host += f"{_sep()}RAM {format_bytes(h.ram_available)} free of {format_bytes(h.ram_total)}"
    lines.append(host)
    links = detection.extra.get("topology") if detection.extra else None
    if links:
        kinds: dict[str, int] = {}
        for link in links:
            kinds[link["link"]] = kinds.get(link["link"], 0) + 1
        if set(kinds) == {"NVLINK"} and len(links) == len(gpus) * (len(gpus) - 1) // 2:
            lines.append("GPU links: NVLink between every pair")
        elif len(links) <= 8:
            by_kind: dict[str, list[str]] = {}
            for link in links:
                by_kind.setdefault(link["link"], []).append("-".join(map(str, link["gpus"])))
            lines.append("GPU links: " + "; ".join(f"{k} {', '.join(v)}"
                                                   for k, v in sorted(by_kind.items())))
        else:
            lines.append("GPU links (pairs): " + ", ".join(f"{k} x{v}"
                                                           for k, v in sorted(kinds.items())))
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        seen = visible_gpus(gpus, cvd)
        if seen:
            lines.append(f"CUDA_VISIBLE_DEVICES={cvd}: a run here sees GPU "
                         + ", ".join(f"{g.index}" for g in seen)
                         + " as " + ", ".join(f"cuda:{i}" for i in range(len(seen))))
        else:
            lines.append(f"CUDA_VISIBLE_DEVICES={cvd!s}: a run here sees no GPU")
    if mixed_models(gpus) and os.environ.get("CUDA_DEVICE_ORDER", "").upper() != "PCI_BUS_ID":
        lines.append("Mixed GPU models: set CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA numbers them "
                     "as listed here.")
    return lines


def render(detection, gpus, stamp: float | None = None):
    import os
    import time

    from rich.console import Group
    from rich.text import Text

    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = {g.index for g in visible_gpus(gpus, cvd)} if cvd is not None else None
    parts = [Text(line) for line in header_lines(detection, gpus)]
    if stamp is not None:
        parts.append(Text(time.strftime("updated %H:%M:%S  (Ctrl-C to stop)",
                                        time.localtime(stamp)), style="dim"))
    parts.append(gpu_table(gpus, visible))
    return Group(*parts)


# -- the command ------------------------------------------------------------------------------

def run(args) -> int:
    import json
    import sys

    if getattr(args, "slurm", False):
        return run_slurm(args)
    spec = simulate_spec(args)
    if args.interval <= 0:
        raise UsageError(f"--interval must be a positive number of seconds, got {args.interval}")
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    detection = detect(spec)
    if not detection.gpus:
        print(f"trainwiz: {detection.message or 'no GPU found'}", file=sys.stderr)
        if args.json:
            print("[]")
        return 0
    if args.watch:
        return _watch(args, spec, detection)
    if args.json:
        print(json.dumps([g.to_json() for g in detection.gpus], indent=2))
        return 0
    from rich.console import Console

    Console().print(render(detection, detection.gpus))
    return 0


def _watch(args, spec, detection) -> int:
    """Refresh until Ctrl-C (or --count): in place on a terminal, one block per refresh when
    piped, one JSON list per line with --json."""
    import json
    import time
    from dataclasses import replace

    def frames():
        nonlocal detection
        n = 0
        while True:
            snap = sampler.sample()
            if detection.source == "nvml":  # a simulated box may have its own host
                fresh = host_info().ram_available
                detection = replace(detection, host=replace(detection.host, ram_available=fresh))
            yield snap
            n += 1
            if args.count is not None and n >= args.count:
                return
            time.sleep(args.interval)

    with GpuSampler(spec) as sampler:
        try:
            if args.json:
                for snap in frames():
                    print(json.dumps([g.to_json() for g in snap.gpus]), flush=True)
                return 0
            from rich.console import Console
            from rich.live import Live

            console = Console()
            if not console.is_terminal:
                for i, snap in enumerate(frames()):
                    if i:
                        console.print()
                    console.print(render(detection, snap.gpus, snap.timestamp))
                    console.file.flush()
                return 0
            with Live(console=console, auto_refresh=False, transient=False) as live:
                for snap in frames():
                    live.update(render(detection, snap.gpus, snap.timestamp), refresh=True)
        except KeyboardInterrupt:
            return 0
    return 0
