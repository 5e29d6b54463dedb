"""Sizes, rates and counts: parsing what users type, printing what they read.

Byte sizes follow one convention everywhere (command-line options, profiles, simulated box files):

- KiB, MiB, GiB, TiB are powers of 1024; nvidia-smi's "MiB" and torch's memory counters are these.
- KB, MB, GB, TB are powers of 1000, as the SI says (a disk vendor's "GB").
- A bare K, M, G, T means the binary unit: ``80G`` is 80 GiB, as in Slurm's ``--mem=80G``,
  ``free -g`` and docker.
- A plain number is bytes.

Printed sizes go through :func:`format_bytes` and nothing else: binary units with the IEC name
(``79.6 GiB``, ``512.0 MiB``), as nvidia-smi shows MiB and torch counts bytes; one decimal unless a
place needs another; a size that was not measured or computed reads ``unknown``, never 0. A column
or an ``used/total`` pair may fix the unit (``unit="GiB"``) and print it once (``bare=True``).

Network rates (``400Gbps``, ``50GB/s``) are decimal, as NIC vendors print them; a lower-case b is
a bit, an upper-case B a byte. Counts (``1e8``, ``2B``, ``500M``) are decimal too.
"""

from __future__ import annotations

import re

from trainwiz.errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 1000,
    "m": 1 << 20, "mib": 1 << 20, "mb": 1000**2,
    "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*")
MAX_SIZE = 1 << 60  # an exbibyte: anything larger is a typo, not a GPU


def parse_size(value: str | int | float, where: str = "--gpu-memory", *,
               positive: bool = True, least: int = 0) -> int:
    """Bytes from ``'80GiB'``, ``'80GB'``, ``'80G'``, ``'40960MiB'``, ``85899345920`` or
    ``8.5e10``. ``where`` names the option or file field in the error; ``positive`` refuses 0;
    ``least`` refuses a size below it (``80`` meant as GiB is 80 bytes: say so, not "too big")."""
    if isinstance(value, bool):
        raise UsageError(f"{where}: expected a size such as 80GiB, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _SIZE.fullmatch(str(value))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise UsageError(f"{where}: cannot read {value!r} as a size; write it like 80GiB, "
                             "24GB, 40960MiB or a number of bytes (KiB/MiB/GiB/TiB and a bare "
                             "K/M/G/T are powers of 1024; KB/MB/GB/TB powers of 1000)")
        number = float(match.group(1))
    size = number * _UNITS[unit]
    if size != size or size < 0 or (positive and size <= 0):
        raise UsageError(f"{where} must be {'positive' if positive else 'zero or more'}, "
                         f"got {value!r}")
    if size > MAX_SIZE:
        raise UsageError(f"{where}: {value!r} is larger than any machine (at most 1 EiB)")
    if size < least:
        raise UsageError(f"{where}: {value!r} is {format_bytes(size)}, less than "
                         f"{format_bytes(least, 0)}; write the unit, e.g. {value}GiB")
    return int(size)


UNKNOWN = "unknown"  # a size nobody measured or computed; never shown as 0
_BINARY = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1))


def format_bytes(n: int | float | None, precision: int = 1, unit: str | None = None, *,
                 bare: bool = False) -> str:
    """A size as people read it, the one way trainwiz prints sizes: ``1.5 GiB``, ``512.0 MiB``,
    ``0 B``; ``unknown`` for None. ``unit`` fixes the unit (aligned columns, ``12.3/80.0 GiB``
    pairs); otherwise the largest unit the size reaches. ``bare``: the number alone, its unit
    said once nearby (a column header, the end of a pair)."""
    if n is None:
        return UNKNOWN
    if unit is None:
        unit = next((name for name, scale in _BINARY if abs(n) >= scale), "B")
    scale = dict(_BINARY)[unit]
    text = f"{int(n)}" if unit == "B" else f"{n / scale:.{precision}f}"
    return text if bare else f"{text} {unit}"


def accelerate_bytes(size: float) -> str:
    """accelerate's convert_bytes: binary steps labelled KB/MB/GB, rounded to 2 places."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024.0:
            return f"{round(size, 2)} {unit}"
        size /= 1024.0
    return f"{round(size, 2)} PB"


# Rates between machines, as NIC and switch vendors print them: b is a bit, B a byte.
_RATE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*([kKmMgGtT]i?)?(bits?|b|B|bytes?)(?:/s|ps)\s*")
NETWORK_RANGE = (10e6 / 8, 100e12 / 8)  # bytes/s: 10 Mbps Ethernet to 100 Tbps per machine
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
    rate = number * prefix * per_byte
    if not NETWORK_RANGE[0] <= rate <= NETWORK_RANGE[1]:  # 1e-6 Gbps gave 24 years a step
        raise UsageError(f"{what} must be from {format_rate(NETWORK_RANGE[0])} to "
                         f"{format_rate(NETWORK_RANGE[1])} (a machine's links to the others), "
                         f"got {text!r}")
    return rate


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
