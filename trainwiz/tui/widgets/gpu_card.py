"""One GPU on the dashboard: memory bar, used/total, utilization, temperature, power, processes."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from trainwiz.tui import fmt
from trainwiz.tui.widgets.bars import clip_lines, usage_bar
from trainwiz.units import format_bytes


def render_gpu(gpu, width: int, stale: bool = False) -> Text:
    """The card's text for a ``GpuInfo`` at ``width`` cells. Pure: a snapshot in, text out."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"GPU {gpu.index}", style="bold")
    text.append(f"  {gpu.name}")
    if gpu.mig:
        text.append("  MIG", style="yellow")
    if gpu.compute_capability:
        text.append(f"  cc {gpu.compute_capability}", style="bright_black")
    if stale:
        text.append("  not answering (last reading shown)", style="bold red")
    error = getattr(gpu, "error", None)
    if error:
        text.append(f"  error: {error}", style="bold red")
    if not gpu.processes:
        text.append("  no processes", style="bright_black")
    text.append("\n")
    numbers = (f" {format_bytes(gpu.memory_used, unit='GiB', bare=True)}"
               f"/{format_bytes(gpu.memory_total, unit='GiB')}"
               f"  util {fmt.pct(gpu.utilization):>4}  {fmt.temp(gpu.temperature):>5}"
               f"  {fmt.watts(gpu.power_draw, gpu.power_limit)}")
    bar_width = max(width - len(numbers), 10)
    text.append_text(usage_bar(gpu.memory_used, gpu.memory_total, bar_width))
    text.append(numbers)
    if gpu.processes:
        parts = []
        for proc in gpu.processes[:4]:
            name = f" {proc.name}" if proc.name else ""
            parts.append(f"{proc.pid}{name} {format_bytes(proc.memory_used)}")
        more = len(gpu.processes) - 4
        line = "  ".join(parts) + (f"  +{more} more" if more > 0 else "")
        text.append(f"\n  processes: {line}", style="cyan")
    return text


class GpuCard(Widget):
    """Shows one ``GpuInfo``; the screen sets ``gpu`` when a new snapshot arrives."""

    DEFAULT_CSS = """
    GpuCard { height: auto; padding: 0 1; }
    """

    gpu = reactive(None, layout=True)
    stale = reactive(False)

    def __init__(self, gpu, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(GpuCard.gpu, gpu)

    def render(self) -> Text:
        if self.gpu is None:
            return Text("no reading", style="bright_black")
        width = self.content_size.width or 78
        return clip_lines(render_gpu(self.gpu, width, self.stale), width)
