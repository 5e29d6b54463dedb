"""The monitor's plot: the loss curve, or memory over time against the estimate (textual-plotext).

One plot at a time (the monitor switches with a key). Each series has its own marker character,
so the plot reads without colour (NO_COLOR, 16-colour tmux); the estimate is a line of ``=``.
Rendered only when shown and when its data changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

MARKERS = ("braille", "x", "+", "o", "*", "#", "@", "%")


@dataclass(frozen=True)
class PlotData:
    """What to draw: ``series`` is ``[(label, xs, ys)]``; ``estimate`` a horizontal line."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple = ()
    estimate: float | None = None
    empty: str = "nothing to plot yet"


class RunPlot(PlotextPlot):
    DEFAULT_CSS = """
    RunPlot { height: 1fr; min-height: 6; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.data: PlotData | None = None

    def show(self, data: PlotData) -> None:
        if data == self.data:
            return
        self.data = data
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel(data.xlabel)
        plt.ylabel(data.ylabel)
        drawn = [(label, list(xs), list(ys)) for label, xs, ys in data.series if len(xs) >= 1]
        if not drawn:
            plt.title(f"{data.title}: {data.empty}")
        for i, (label, xs, ys) in enumerate(drawn):
            plt.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], label=label)
        if data.estimate is not None and drawn:
            lo = min(min(xs) for _, xs, _ in drawn)
            hi = max(max(xs) for _, xs, _ in drawn)
            plt.plot([lo, hi if hi > lo else lo + 1], [data.estimate] * 2, marker="=",
                     label="estimate")
        self.refresh()
