"""The wizard's live memory panel: one stacked bar per GPU, the verdict, ranked suggestions.

The panel is given a plan's estimate (``trainwiz.plan.PlanEstimate``) and renders it; it
computes no memory itself. Every category has its own glyph and the verdict is spelled out, so nothing
depends on colour alone (16-colour terminals, colour-blind users, screenshots in issues).
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from trainwiz.estimator.suggest import METHOD_NOTE
from trainwiz.estimator.types import verdict_of
from trainwiz.tui import fmt
from trainwiz.tui.widgets.bars import stacked_bar
from trainwiz.units import format_bytes

# (field of MemoryBreakdown, legend word, glyph, style)
CATEGORIES = (
    ("params", "params", "█", "blue"),
    ("grads", "grads", "▓", "cyan"),
    ("optimizer", "optim", "▒", "magenta"),
    ("activations", "activ", "░", "yellow"),
    ("temporary", "temp", "≡", "green"),
    ("overhead", "overhead", "×", "white"),
)
OTHERS = ("in use by others", "#", "red")
# LoRA/QLoRA: what ``params`` is made of, each its own segment (MemoryBreakdown's parts of params)
PEFT_PARTS = (
    ("frozen_params", "frozen", "▚", "bright_blue"),
    ("quantized_params", "4-bit", "▞", "bright_magenta"),
    ("adapter_params", "adapters", "+", "bright_cyan"),
)


def categories(per_gpu) -> list[tuple[int, str, str, str]]:
    """``(bytes, legend word, glyph, style)`` per segment. Under LoRA/QLoRA the parameters split
    into frozen weights, 4-bit weights and adapters (and whatever else stays trainable)."""
    out = []
    for name, word, glyph, style in CATEGORIES:
        value = getattr(per_gpu, name)
        if name == "params":
            parts = [(getattr(per_gpu, n, 0) or 0, w, g, st) for n, w, g, st in PEFT_PARTS]
            if any(v for v, *_ in parts):
                rest = value - sum(v for v, *_ in parts)
                if rest > 0:
                    out.append((rest, word, glyph, style))
                out.extend(part for part in parts if part[0])
                continue
        out.append((value, word, glyph, style))
    return out


def describe_change(change: dict) -> str:
    parts = []
    for key, value in change.items():
        if value is True:
            value = "on"
        elif value is False:
            value = "off"
        parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def render_panel(plan_estimate, width: int, title: str = "", message: str | Text = "",
                 note: str = "", time_lines: tuple = (), suggestion_times: tuple = (),
                 heading: str = "Memory per GPU (GiB)") -> Text:
    """The panel's text from a ``trainwiz.plan.PlanEstimate``: the verdict first (it must stay
    visible at 80×24), one bar per group of identical GPUs, the legend, the suggestions.
    ``note``: a line about the hardware (planned for another box); ``suggestion_times``: what
    each suggestion's time is ("~9,100 tokens/s", "~25× slower"), in the suggestions' order;
    ``message``: shown instead of the bars (a Text keeps its styles: a CPU plan's verdict)."""
    text = Text()
    text.append(heading, style="bold")
    if title:
        text.append(f"  {title}", style="bright_black")
    text.append("\n")
    if note:
        text.append(note + "\n", style="yellow")
    if isinstance(message, Text) and message:
        text.append_text(message)
        return text
    if message or plan_estimate is None:
        text.append(message or "Choose a model to see the estimate.", style="italic")
        return text
    est = plan_estimate.estimate
    per_gpu = est.per_gpu
    verdict = plan_estimate.verdict
    shown = verdict_of(verdict)
    text.append(f" {shown.banner} ", style=f"reverse {shown.style}")
    # the sentence says each size as the CLI does (``1.8 TiB``, not ``1871.7 GiB``): the same
    # estimate reads the same in both; the bars and the legend below are the GiB of the title
    text.append(f" {format_bytes(per_gpu.total)} needed per GPU")
    decisive = plan_estimate.decisive
    if decisive is not None:
        room = "free" if decisive.memory_free is not None else ""
        text.append(f" of {format_bytes(decisive.usable)}{' ' + room if room else ''}")
        if len({(g.gpu.name, g.gpu.usable) for g in plan_estimate.gpus}) > 1:
            text.append(f" (GPU{decisive.index}, {decisive.name.removeprefix('NVIDIA ')})")
    text.append("\n")
    rows = plan_estimate.rows()
    label_w = max(len(r.label) for r in rows) + 1
    for row in rows:
        gpu = row.gpu
        cap = gpu.memory_total
        others = (cap - gpu.memory_free) if (cap and gpu.memory_free is not None) else 0
        row_verdict = verdict_of(row.verdict)
        right = (f" {format_bytes(per_gpu.total, unit='GiB', bare=True)}"
                 f"/{format_bytes(cap, unit='GiB', bare=True)} ")
        bar_w = max(width - label_w - len(right) - 1, 8)
        segments = [(value, glyph, gstyle) for value, _, glyph, gstyle in categories(per_gpu)]
        segments.insert(0, (others, OTHERS[1], OTHERS[2]))  # drawn first: ours must fit beside
        text.append(row.label.ljust(label_w), style="bold")
        text.append_text(stacked_bar(segments, cap, bar_w))
        text.append(right)
        text.append(row_verdict.mark, style=row_verdict.style)
        text.append("\n")
    names = list(dict.fromkeys(r.gpu.name for r in rows))
    count = sum(r.count for r in rows)
    machines = plan_estimate.machines
    where = " + ".join(f"{sum(r.count for r in rows if r.gpu.name == n)} × {n}" for n in names)
    if machines > 1:
        where += f" ({machines} machines × {count // machines})"
    text.append(where + "\n", style="bright_black")
    trainable = est.trainable_params
    total_params = est.total_params or est.model.params
    if trainable is not None and total_params and trainable != total_params:
        text.append(f"trainable {fmt.params(trainable)} of {fmt.params(total_params)} parameters "
                    f"({100 * trainable / total_params:.2f}%)\n", style="bright_black")
    for line in time_lines:  # the time estimate (trainwiz.estimator.timing's words)
        text.append(line + "\n", style="cyan")
    unknown = {word for name, word, *_ in CATEGORIES if name in est.not_estimated}
    cells = [(glyph, gstyle, f"{word} " + ("?" if word in unknown
                                           else format_bytes(value, unit='GiB', bare=True)))
             for value, word, glyph, gstyle in categories(per_gpu)]  # "activ ?": not estimated
    if any(r.gpu.memory_free is not None for r in rows):
        cells.append((OTHERS[1], OTHERS[2], "others"))
    cell_w = max(len(c[2]) for c in cells) + 3
    per_line = max(1, width // cell_w)
    for i, (glyph, gstyle, label) in enumerate(cells):
        text.append(glyph, style=gstyle)
        text.append(f" {label}".ljust(cell_w - 1))
        if (i + 1) % per_line == 0 or i == len(cells) - 1:
            text.append("\n")
    for line in est.notes[:2]:
        text.append(f"note: {line}\n", style="bright_black")
    suggestions = plan_estimate.suggestions[:9]
    if suggestions:
        text.append("Suggestions (press the number to apply)\n", style="bold")
        for i, sug in enumerate(suggestions, 1):
            text.append(f"{i} ", style="bold reverse")
            text.append(f" {sug.note or describe_change(sug.change)} ")
            text.append(f"→ {format_bytes(sug.total)} ")
            text.append(sug.verdict_text, style=verdict_of(sug.verdict).style)
            timing = suggestion_times[i - 1] if i <= len(suggestion_times) else ""
            if timing:
                text.append(f", {timing}", style="yellow" if "slower" in timing else "cyan")
            elif sug.slower:
                text.append(" (slower)", style="yellow")
            text.append("\n")
        if any(sug.method_change for sug in suggestions):
            text.append(METHOD_NOTE + "\n", style="bright_black")
    elif shown.fits:
        text.append("No change needed.", style="bright_black")
    return text


class MemoryPanel(Widget):
    """Set ``estimate`` (a ``PlanEstimate`` or None) and the panel redraws at its width."""

    DEFAULT_CSS = """
    MemoryPanel { height: auto; }
    """

    estimate = reactive(None, layout=True, always_update=True)
    title = reactive("", layout=True)
    message = reactive("", layout=True)
    note = reactive("", layout=True)
    time_lines = reactive((), layout=True)
    suggestion_times = reactive((), layout=True)
    heading = reactive("Memory per GPU (GiB)", layout=True)

    def render(self) -> Text:
        return render_panel(self.estimate, self.content_size.width or 40, self.title,
                            self.message, self.note, self.time_lines, self.suggestion_times,
                            self.heading)
