"""GPU presets for planning mode: the cards people rent or own, with the figures NVML reports.

``memory_total`` is what ``nvmlDeviceGetMemoryInfo`` / ``nvidia-smi --query-gpu=memory.total``
reports on a recent driver (in MiB there; bytes here), which is a little less than the marketing
size: an "80GB" H100 shows 81559 MiB. ``power_limit`` is the default enforced board limit in watts.
``idle_power`` and ``interconnect`` only make the simulated box look and plan like the real one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

MiB = 1 << 20


@dataclass(frozen=True)
class GpuPreset:
    key: str  # canonical spelling, e.g. "H100-80GB"
    name: str  # the name NVML reports
    memory_total: int  # bytes
    compute_capability: str
    power_limit: float  # watts
    idle_power: float  # watts
    interconnect: str  # "nvlink" | "pcie"
    aliases: tuple[str, ...] = ()
    pcie_gen: int | None = None  # what NVML's max PCIe link generation / width report
    pcie_width: int | None = None
    nvlink_links: int | None = None  # NVLink links up on an SXM board / bridged pair (0: none)


def _p(key, name, mib, cc, power, idle, link, *aliases) -> GpuPreset:
    return GpuPreset(key, name, mib * MiB, cc, float(power), float(idle), link, tuple(aliases))


_ALL = (
    _p("H100-80GB", "NVIDIA H100 80GB HBM3", 81559, "9.0", 700, 72, "nvlink",
       "H100", "H100-SXM", "H100-SXM5", "H100-80GB-SXM", "H100-SXM-80GB", "H100-80GB-HBM3"),
    _p("H100-PCIE", "NVIDIA H100 PCIe", 81559, "9.0", 350, 48, "pcie",
       "H100-80GB-PCIE", "H100-PCIE-80GB"),
    _p("H200", "NVIDIA H200", 143771, "9.0", 700, 76, "nvlink",
       "H200-141GB", "H200-SXM", "H200-141GB-SXM"),
    _p("H100-NVL", "NVIDIA H100 NVL", 95830, "9.0", 400, 60, "nvlink", "H100-NVL-94GB"),
    _p("B200", "NVIDIA B200", 183359, "10.0", 1000, 140, "nvlink", "B200-180GB", "B200-SXM"),
    _p("A100-40GB", "NVIDIA A100-SXM4-40GB", 40960, "8.0", 400, 55, "nvlink",
       "A100-SXM4-40GB", "A100-40GB-SXM", "A100-40"),
    _p("A100-80GB", "NVIDIA A100-SXM4-80GB", 81920, "8.0", 400, 62, "nvlink",
       "A100-SXM4-80GB", "A100-80GB-SXM", "A100-80"),
    _p("A100-80GB-PCIE", "NVIDIA A100 80GB PCIe", 81920, "8.0", 300, 45, "pcie",
       "A100-PCIE-80GB", "A100-PCIE"),
    _p("A6000", "NVIDIA RTX A6000", 49140, "8.6", 300, 25, "pcie", "RTX-A6000", "A6000-48GB"),
    _p("L40S", "NVIDIA L40S", 46068, "8.9", 350, 34, "pcie", "L40S-48GB"),
    _p("A10G", "NVIDIA A10G", 23028, "8.6", 300, 26, "pcie", "A10G-24GB"),
    _p("L4", "NVIDIA L4", 23034, "8.9", 72, 16, "pcie", "L4-24GB"),
    _p("4090", "NVIDIA GeForce RTX 4090", 24564, "8.9", 450, 22, "pcie",
       "RTX4090", "RTX-4090", "4090-24GB"),
    _p("3090", "NVIDIA GeForce RTX 3090", 24576, "8.6", 350, 28, "pcie",
       "RTX3090", "RTX-3090", "3090-24GB"),
    _p("V100-16GB", "Tesla V100-SXM2-16GB", 16384, "7.0", 300, 42, "nvlink",
       "V100-SXM2-16GB"),
    _p("V100-32GB", "Tesla V100-SXM2-32GB", 32768, "7.0", 300, 44, "nvlink",
       "V100-SXM2-32GB"),
    _p("T4", "Tesla T4", 15360, "7.5", 70, 10, "pcie", "T4-16GB"),
)

# The host link and NVLink of each card as NVML reports them on a usual server (data sheets:
# SXM H100/H200/B200 18 NVLink links, A100 12, V100 6; H100 NVL pairs bridged with 12).
_LINKS = {
    "H100-80GB": (5, 16, 18), "H100-PCIE": (5, 16, 0), "H200": (5, 16, 18), "H100-NVL": (5, 16, 12),
    "B200": (5, 16, 18), "A100-40GB": (4, 16, 12), "A100-80GB": (4, 16, 12),
    "A100-80GB-PCIE": (4, 16, 0), "A6000": (4, 16, 0), "L40S": (4, 16, 0), "A10G": (4, 16, 0),
    "L4": (4, 16, 0), "4090": (4, 16, 0), "3090": (4, 16, 0), "V100-16GB": (3, 16, 6),
    "V100-32GB": (3, 16, 6), "T4": (3, 16, 0),
}
_ALL = tuple(replace(p, pcie_gen=_LINKS[p.key][0], pcie_width=_LINKS[p.key][1],
                     nvlink_links=_LINKS[p.key][2]) if p.key in _LINKS else p for p in _ALL)

#: Canonical key -> preset, in the order they are listed to users.
PRESETS: dict[str, GpuPreset] = {p.key: p for p in _ALL}

_NOISE = re.compile(r"^(NVIDIA|GEFORCE|TESLA)+")


def _norm(text: str) -> str:
    """Spelling-insensitive form: upper case, only letters and digits, no vendor words."""
    s = re.sub(r"[^A-Z0-9]", "", text.upper())
    return _NOISE.sub("", s)


_LOOKUP: dict[str, GpuPreset] = {}
for _preset in _ALL:
    for _alias in (_preset.key, _preset.name, *_preset.aliases):
        _LOOKUP.setdefault(_norm(_alias), _preset)


def preset_names() -> str:
    return ", ".join(PRESETS)


def find_preset(name: str) -> GpuPreset | list[GpuPreset]:
    """The preset ``name`` means, or the candidates it could be cut from when it is not one.

    Case, spaces, dashes and vendor words (NVIDIA, GeForce, Tesla) don't matter, and known
    aliases are accepted (``8xH100`` is the SXM H100-80GB). Nothing is guessed beyond that:
    ``A100`` returns the three A100s to choose from, ``L40`` (a different card) returns L40S
    as a suggestion, and a name like nothing we know returns an empty list.
    """
    key = _norm(name)
    if not key:
        return []
    if key in _LOOKUP:
        return _LOOKUP[key]
    matches = []
    for alias, preset in _LOOKUP.items():
        if alias.startswith(key) and preset not in matches:
            matches.append(preset)
    return matches


def unknown_preset_message(name: str, candidates: list[GpuPreset]) -> str:
    """Why ``name`` is not a preset, for an error message."""
    if len(candidates) > 1:
        return f"{name!r} is ambiguous, say which: {', '.join(p.key for p in candidates)}"
    if candidates:
        return f"unknown GPU {name!r} (did you mean {candidates[0].key}?)"
    return f"unknown GPU {name!r}"
