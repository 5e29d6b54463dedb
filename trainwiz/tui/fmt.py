"""Display formatting for the app: counts, percentages, missing values. Presentation only.
Sizes are :func:`trainwiz.units.format_bytes`, as everywhere else."""

from __future__ import annotations

GIB = 1 << 30  # the memory plot's scale (its axis is GiB)
NA = "n/a"


def params(n: int | None) -> str:
    if n is None:
        return NA
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def pct(value: float | None) -> str:
    return NA if value is None else f"{value:.0f}%"


def temp(value: float | None) -> str:
    return NA if value is None else f"{value:.0f}°C"


def watts(draw: float | None, limit: float | None = None) -> str:
    if draw is None:
        return NA
    if limit:
        return f"{draw:.0f}/{limit:.0f} W"
    return f"{draw:.0f} W"
