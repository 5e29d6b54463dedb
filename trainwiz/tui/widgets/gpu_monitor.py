"""One GPU in the run monitor: used/total now, the estimate's peak marked, a history sparkline,
utilization, temperature and power. Rendered from the run directory's samples."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from trainwiz.tui import fmt
from trainwiz.tui.widgets.bars import clip_lines, sparkline, usage_bar


@dataclass(frozen=True)
class GpuTrace:
    """What the panel shows: the latest reading and the history of memory used."""

    label: str  # "GPU 0 NVIDIA H100 80GB HBM3" or "rank 0 (host RSS)"
    used: int | None
    total: int | None
    history: tuple  # memory used, oldest first
    utilization: float | None = None
    temperature: float | None = None
    power: float | None = None
    power_limit: float | None = None
    estimate: int | None = None  # the estimate's per-GPU total


def render_trace(trace: GpuTrace, width: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(trace.label, style="bold")
    if trace.total is None:  # host memory of a CPU rank: no capacity, no GPU readings
        numbers = f" {fmt.size(trace.used)} "
        text.append("\n")
        text.append(numbers)
        text.append_text(sparkline(trace.history, max(width - len(numbers), 4)))
        return text
    text.append(f"  util {fmt.pct(trace.utilization)}  {fmt.temp(trace.temperature)}  "
                f"{fmt.watts(trace.power, trace.power_limit)}")
    if trace.estimate is not None:
        peak = max((v for v in trace.history if v is not None), default=None)
        text.append("  ◆ est ", style="magenta")
        text.append(f"{fmt.gib(trace.estimate)}", style="magenta")
        text.append(f" peak {fmt.gib(peak)}")
    text.append("\n")
    numbers = f" {fmt.gib(trace.used)}/{fmt.gib(trace.total)} GiB"
    half = max((width - len(numbers)) // 2, 8)
    text.append_text(usage_bar(trace.used, trace.total, half, marker=trace.estimate))
    text.append(numbers)
    text.append(" ")
    spark_w = max(width - half - len(numbers) - 1, 4)
    text.append_text(sparkline(trace.history, spark_w, maximum=None))
    return text


class GpuMonitorPanel(Widget):
    DEFAULT_CSS = """
    GpuMonitorPanel { height: 2; padding: 0 1; }
    """

    trace = reactive(None)

    def render(self) -> Text:
        if self.trace is None:
            return Text("waiting for the first sample…", style="bright_black")
        width = self.content_size.width or 78
        return clip_lines(render_trace(self.trace, width), width)
