"""Text bars that read in 16 colours and without colour: every segment has its own glyph."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

Segment = tuple[int | float, str, str]  # (amount, glyph, style)


def stacked_bar(segments: Sequence[Segment], capacity: int | float | None, width: int,
                empty: str = "·", empty_style: str = "bright_black") -> Text:
    """A bar ``width`` cells wide: the segments in order, against ``capacity``.

    What does not fit is cut at the right edge and the last cell becomes ``▶`` in red,
    so an overflow is visible without colour.
    """
    width = max(width, 1)
    text = Text()
    total = sum(max(a, 0) for a, _, _ in segments)
    cap = capacity if capacity and capacity > 0 else total
    if not cap:
        text.append(empty * width, style=empty_style)
        return text
    used_cells = 0
    acc = 0.0
    for amount, glyph, style in segments:
        if amount <= 0:
            continue
        acc += amount
        end = min(width, round(acc / cap * width))
        cells = max(end - used_cells, 1 if used_cells < width else 0)
        cells = min(cells, width - used_cells)
        if cells > 0:
            text.append(glyph * cells, style=style)
            used_cells += cells
    if used_cells < width:
        text.append(empty * (width - used_cells), style=empty_style)
    if total > cap:
        text = text[: width - 1]
        text.append("▶", style="bold red")
    return text


def usage_bar(used: int | None, total: int | None, width: int, style: str = "green") -> Text:
    """A one-colour used/total bar; ``n/a`` shown as an empty dotted bar."""
    if used is None or not total:
        return Text("?" * max(width, 1), style="bright_black")
    frac = used / total
    if frac >= 0.95:
        style = "red"
    elif frac >= 0.8:
        style = "yellow"
    return stacked_bar([(used, "█", style)], total, width)
