"""Display formatting for the app: sizes, percentages, missing values. Presentation only."""

from __future__ import annotations

GIB = 1024**3
NA = "n/a"


def gib(n: int | float | None, digits: int = 1) -> str:
    """``12.3`` (GiB, no unit) or ``n/a``."""
    if n is None:
        return NA
    return f"{n / GIB:.{digits}f}"


def size(n: int | float | None) -> str:
    """A human size: ``512 MiB``, ``12.3 GiB``, ``1.2 TiB``, or ``n/a``."""
    if n is None:
        return NA
    n = float(n)
    for unit, scale in (("TiB", 1024**4), ("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


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
