"""Byte sizes: parsing what users type, printing what they read."""

from __future__ import annotations

import re

from trainwiz.errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1 << 10,
    "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40,
}


def parse_size(text: str, what: str = "--gpu-memory") -> int:
    """'80GiB', '80GB', '24g', '85899345920' -> bytes. A bare 'G'/'T' means GiB/TiB (what GPU
    vendors print as 'GB' for memory)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise UsageError(f"{what}: cannot read {text!r} as a size; write it like 80GiB, 24GB, "
                         "40960MiB or a number of bytes")
    value = float(match.group(1)) * _UNITS[unit]
    if value <= 0:
        raise UsageError(f"{what} must be positive, got {text!r}")
    return int(value)


def format_bytes(n: int | float | None, precision: int = 1) -> str:
    """Binary units, as nvidia-smi and torch report GPU memory: 1.5 GiB, 512 MiB."""
    if n is None:
        return "N/A"
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            if unit == "B":
                return f"{sign}{int(n)} B"
            return f"{sign}{n:.{precision}f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def accelerate_bytes(size: float) -> str:
    """accelerate's convert_bytes: binary steps labelled KB/MB/GB, rounded to 2 places."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024.0:
            return f"{round(size, 2)} {unit}"
        size /= 1024.0
    return f"{round(size, 2)} PB"
