"""One line a row: a table whose last column takes the room the others leave, its cells cut
with "…" on screen (the Runs and Profiles screens; the whole text is shown under the table)."""

from __future__ import annotations

from rich.text import Text


def cut(text: str, style: str = "") -> Text:
    """A cell of text from outside (names, messages): never markup; "…" where it is cut."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def rest_width(table, widths, total: int, least: int = 12) -> int:
    """The last column's width when the columns before it are ``widths`` (0: not shown) and
    the table is ``total`` columns wide; room for a vertical scrollbar is kept, so that one
    appearing never cuts the last column without its "…"."""
    pad = 2 * table.cell_padding
    used = sum(w + pad for w in widths if w) + pad + table.scrollbar_size_vertical
    return max(total - used, least)


def longest(values, least: int, most: int | None = None) -> int:
    width = max([least, *(len(v) for v in values)])
    return width if most is None else min(width, most)
