"""The wizard's live memory panel: one stacked bar per GPU, the verdict, ranked suggestions.

The panel is given estimates (``trainwiz.estimator`` values) and renders them; it computes no
memory itself. Every category has its own glyph and the verdict is spelled out, so nothing
depends on colour alone (16-colour terminals, colour-blind users, screenshots in issues).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from trainwiz.tui import fmt
from trainwiz.tui.widgets.bars import stacked_bar

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

VERDICT_STYLE = {
    "fits": ("FITS", "bold green"),
    "tight": ("TIGHT", "bold yellow"),
    "does not fit": ("DOES NOT FIT", "bold red"),
    "unknown": ("UNKNOWN", "bold"),
}
WORST = ("does not fit", "tight", "unknown", "fits")


@dataclass(frozen=True)
class GpuFit:
    """The estimate for one GPU: its label, capacity and free memory (bytes or None)."""

    label: str
    estimate: object  # trainwiz.estimator.Estimate
    capacity: int | None
    free: int | None


def overall(fits: list[GpuFit]):
    """The estimate whose verdict is the worst: it decides the panel's verdict."""
    if not fits:
        return None
    return min(fits, key=lambda f: WORST.index(f.estimate.verdict)
               if f.estimate.verdict in WORST else 2).estimate


def describe_change(change: dict) -> str:
    parts = []
    for key, value in change.items():
        if value is True:
            value = "on"
        elif value is False:
            value = "off"
        parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def render_panel(fits: list[GpuFit], width: int, title: str = "", message: str = "",
                 gpu_count: int | None = None) -> Text:
    """The panel's text. ``gpu_count``: GPUs on this box, to flag suggestions that need more."""
    text = Text()
    text.append("Memory per GPU (GiB)", style="bold")
    if title:
        text.append(f"  {title}", style="bright_black")
    text.append("\n")
    if message or not fits:
        text.append(message or "Choose a model to see the estimate.", style="italic")
        return text
    label_w = max(len(f.label) for f in fits) + 1
    for fit in fits:
        per_gpu = fit.estimate.per_gpu
        cap = fit.capacity
        others = (cap - fit.free) if (cap and fit.free is not None and fit.free < cap) else 0
        right = f" {fmt.gib(per_gpu.total)}/{fmt.gib(cap)}"
        bar_w = max(width - label_w - len(right), 8)
        segments = [(getattr(per_gpu, name), glyph, style) for name, _, glyph, style in CATEGORIES]
        # memory others already hold is drawn first: what we need must fit beside it
        segments.insert(0, (others, OTHERS[1], OTHERS[2]))
        text.append(fit.label.ljust(label_w), style="bold")
        text.append_text(stacked_bar(segments, cap, bar_w))
        text.append(right)
        text.append("\n")
    # the legend, with the sizes of the first GPU (the per-GPU terms are the same on each)
    first = fits[0].estimate.per_gpu
    cells = [(glyph, style, f"{word} {fmt.gib(getattr(first, name))}")
             for name, word, glyph, style in CATEGORIES]
    if any(f.free is not None and f.capacity and f.free < f.capacity for f in fits):
        cells.append((OTHERS[1], OTHERS[2], "others"))
    cell_w = max(len(c[2]) for c in cells) + 3
    per_line = max(1, width // cell_w)
    for i, (glyph, style, label) in enumerate(cells):
        text.append(glyph, style=style)
        text.append(f" {label}".ljust(cell_w - 1))
        if (i + 1) % per_line == 0 or i == len(cells) - 1:
            text.append("\n")
    worst = overall(fits)
    word, style = VERDICT_STYLE.get(worst.verdict, (worst.verdict.upper(), "bold"))
    text.append(f" {word} ", style=f"reverse {style}")
    cap = fits[0].capacity if fits else None
    text.append(f" {fmt.gib(worst.per_gpu.total)} GiB needed per GPU")
    if cap:
        text.append(f" of {fmt.gib(cap)} GiB")
    text.append("\n")
    for note in worst.notes[:2]:
        text.append(f"note: {note}\n", style="bright_black")
    suggestions = worst.suggestions[:9]
    if suggestions:
        text.append("Suggestions (press the number to apply)\n", style="bold")
        # the estimator judges a change against capacity; a GPU others already use may have
        # less room: say so rather than promise a fit
        busy = [(f.free, f.label) for f in fits if f.free is not None and f.capacity
                and f.free < f.capacity]
        tightest = min(busy) if busy else None
        for i, sug in enumerate(suggestions, 1):
            verdict = "fits" if sug.fits else "still too big"
            vstyle = "green" if sug.fits else "red"
            if sug.fits and tightest is not None and sug.total > tightest[0]:
                verdict = f"fits an idle GPU, not {tightest[1]} ({fmt.gib(tightest[0])} free)"
                vstyle = "yellow"
            text.append(f"{i} ", style="bold reverse")
            text.append(f" {sug.note or describe_change(sug.change)} ")
            text.append(f"→ {fmt.gib(sug.total)} GiB ")
            text.append(verdict, style=vstyle)
            if sug.slower:
                text.append(" (slower)", style="yellow")
            wanted = sug.change.get("num_gpus")
            if gpu_count and wanted and wanted > gpu_count:
                text.append(f" (needs {wanted} GPUs; this box has {gpu_count})", style="yellow")
            text.append("\n")
    elif worst.verdict in ("fits", "tight"):
        text.append("No change needed.", style="bright_black")
    return text


class MemoryPanel(Widget):
    """Set ``fits`` (a list of ``GpuFit``) and the panel redraws at its current width."""

    DEFAULT_CSS = """
    MemoryPanel { height: auto; }
    """

    fits = reactive(list, layout=True, always_update=True)
    title = reactive("", layout=True)
    message = reactive("", layout=True)
    gpu_count = reactive(0, layout=True)

    def render(self) -> Text:
        return render_panel(self.fits, self.content_size.width or 40, self.title, self.message,
                            self.gpu_count)
