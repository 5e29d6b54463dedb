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


# Rates between machines, as NIC and switch vendors print them: b is a bit, B a byte.
_RATE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*([kKmMgGtT]i?)?(bits?|b|B|bytes?)(?:/s|ps)\s*")
_RATE_PREFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
                "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40}


def parse_rate(text: str, what: str = "--network") -> float:
    """'400Gbps', '400 Gb/s', '3.2Tbps', '50GB/s', '50GBps' -> bytes per second. A lower-case b
    (or 'bit') is a bit, an upper-case B (or 'byte') a byte, as vendors write them."""
    match = _RATE.fullmatch(str(text))
    if not match:
        raise UsageError(f"{what}: cannot read {text!r} as a network speed; write it like 400Gbps, "
                         "100Gb/s, 3.2Tbps (bits per second) or 50GB/s (bytes per second)")
    number = float(match.group(1))
    if number <= 0:
        raise UsageError(f"{what} must be positive, got {text!r}")
    prefix = _RATE_PREFIX[(match.group(2) or "").lower()]
    per_byte = 1 if match.group(3).startswith(("B", "byte")) else 1 / 8
    return number * prefix * per_byte


def format_rate(bytes_per_second: float) -> str:
    """Network speeds in bits, as vendors print them: 400 Gbps."""
    bits = bytes_per_second * 8
    for unit, div in (("Tbps", 1e12), ("Gbps", 1e9), ("Mbps", 1e6)):
        if bits >= div:
            return f"{bits / div:g} {unit}"
    return f"{bits:g} bps"


def parse_count(text, what: str) -> int:
    """A positive whole count as people type it: 1e8, 100_000_000, 2B, 500M, 1,000."""
    raw = str(text).strip().replace("_", "").replace(",", "")
    mult = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(raw[-1:].upper()) if raw else None
    try:
        value = float(raw[:-1]) * mult if mult else float(raw)
    except ValueError:
        raise UsageError(f"{what}: cannot read {text!r} as a number; write it like 1e8, "
                         "100000000, 500M or 2B") from None
    if not value == value or value in (float("inf"),) or value < 1:
        raise UsageError(f"{what} must be a positive number (at least 1), got {text!r}")
    return int(value)
