"""Text bars that read in 16 colours and without colour: every segment has its own glyph."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

Segment = tuple[int | float, str, str]  # (amount, glyph, style)
SPARKS = "▁▂▃▄▅▆▇█"


def stacked_bar(segments: Sequence[Segment], capacity: int | float | None, width: int,
                empty: str = "·", empty_style: str = "bright_black",
                marker: int | float | None = None, marker_glyph: str = "◆",
                marker_style: str = "bold") -> Text:
    """A bar ``width`` cells wide: the segments in order, against ``capacity``.

    When the segments add up to more than ``capacity`` the bar is scaled to hold them all and
    the capacity is marked with a red ``┃``: how far past the edge you are stays visible.
    ``marker`` draws a ``◆`` at another value (the monitor's estimated peak).
    """
    width = max(width, 1)
    total = sum(max(a, 0) for a, _, _ in segments)
    cap = capacity if capacity and capacity > 0 else None
    scale = max(cap or 0, total, marker or 0) or 1
    cells: list[tuple[str, str]] = []
    acc = 0.0
    for amount, glyph, style in segments:
        if amount <= 0:
            continue
        acc += amount
        end = min(width, round(acc / scale * width))
        n = max(end - len(cells), 1 if len(cells) < width else 0)
        cells.extend([(glyph, style)] * min(n, width - len(cells)))
    cap_pos = min(width - 1, int(cap / scale * width)) if cap is not None else width
    while len(cells) < width:  # free memory up to capacity; nothing drawn past it
        cells.append((empty, empty_style) if len(cells) < cap_pos else (" ", ""))
    if cap is not None and scale > cap:  # the bar runs past capacity: mark where it ends
        cells[cap_pos] = ("┃", "bold red")
    if marker is not None and marker > 0:
        pos = min(width - 1, int(marker / scale * width))
        cells[pos] = (marker_glyph, marker_style)
    text = Text()
    for glyph, style in cells:
        text.append(glyph, style=style)
    return text


def usage_bar(used: int | None, total: int | None, width: int, style: str = "green",
              marker: int | None = None) -> Text:
    """A one-colour used/total bar; an unknown reading is a row of ``?``."""
    if used is None or not total:
        return Text("?" * max(width, 1), style="bright_black")
    frac = used / total
    if frac >= 0.95:
        style = "red"
    elif frac >= 0.8:
        style = "yellow"
    return stacked_bar([(used, "█", style)], total, width, marker=marker,
                       marker_style="bold magenta")


def sparkline(values: Sequence[float | None], width: int, maximum: float | None = None) -> Text:
    """The last ``width`` values as ``▁▂▃▄▅▆▇█``: from 0 to ``maximum`` when given, otherwise
    from their own lowest to highest value, so small movements stay visible."""
    values = list(values)[-width:]
    known = [v for v in values if v is not None]
    lo = 0.0 if maximum else min(known, default=0.0)
    hi = maximum or max(known, default=0.0)
    span = (hi - lo) or 1.0
    text = Text(" " * (width - len(values)))
    for v in values:
        if v is None:
            text.append("?", style="bright_black")
        else:
            idx = min(len(SPARKS) - 1, max(0, int((v - lo) / span * (len(SPARKS) - 1) + 0.5)))
            text.append(SPARKS[idx], style="cyan")
    return text


def clip_lines(text: Text, width: int) -> Text:
    """Each line cut to ``width`` cells with an ellipsis: panels with a fixed height stay
    readable in a narrow terminal instead of wrapping into the next row."""
    lines = text.split("\n", allow_blank=True)
    out = Text()
    for i, line in enumerate(lines):
        line.truncate(max(width, 1), overflow="ellipsis")
        if i:
            out.append("\n")
        out.append_text(line)
    return out
