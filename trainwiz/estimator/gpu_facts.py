"""What the time model knows about a GPU model: vendor data-sheet figures, with their sources.

The table is data (``gpu_facts.json`` beside this module), one row per GPU model, each with the
URL of the data sheet its figures come from. A row is found by any of its ``names``: what NVML
reports (``NVIDIA H100 80GB HBM3``) and the simulated presets' keys and aliases (``H100-80GB``),
compared without case, spaces, dashes or the vendor words NVIDIA / GeForce / Tesla. A GPU that is
not in the table has no facts: the time is then "not estimated", never guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PRECISION_DTYPE = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}


@dataclass(frozen=True)
class GpuFacts:
    key: str
    tflops: dict  # dtype -> peak dense TFLOPS (None: not published / not supported)
    memory_bandwidth_gbs: float
    nvlink_gbs: float | None  # total bidirectional NVLink bandwidth per GPU; None: no NVLink
    nvlink_links: int | None
    nvlink_generation: int | None
    pcie_generation: int | None
    pcie_width: int | None
    source: str

    def peak_flops(self, dtype: str) -> float | None:
        """Peak dense FLOP/s for ``dtype`` (fp32, fp16, bf16), or None when the sheet has none."""
        value = self.tflops.get(dtype)
        return None if value is None else float(value) * 1e12


def _norm(text: str) -> str:
    s = re.sub(r"[^A-Z0-9]", "", str(text).upper())
    return re.sub(r"^(NVIDIA|GEFORCE|TESLA)+", "", s)


@lru_cache(maxsize=1)
def _table() -> tuple[dict, dict]:
    with open(Path(__file__).with_name("gpu_facts.json"), encoding="utf-8") as fh:
        rows = json.load(fh)["gpus"]
    by_key, lookup = {}, {}
    for row in rows:
        nv = row.get("nvlink") or {}
        pcie = row.get("pcie") or {}
        facts = GpuFacts(key=row["key"], tflops=dict(row["tflops"]),
                         memory_bandwidth_gbs=float(row["memory_bandwidth_gbs"]),
                         nvlink_gbs=nv.get("bandwidth_gbs"), nvlink_links=nv.get("links"),
                         nvlink_generation=nv.get("generation"),
                         pcie_generation=pcie.get("generation"), pcie_width=pcie.get("width"),
                         source=row["source"])
        by_key[facts.key] = facts
        for name in (row["key"], *row["names"]):
            lookup.setdefault(_norm(name), facts)
    return by_key, lookup


def gpu_facts(name: str | None) -> GpuFacts | None:
    """The facts for a GPU named as NVML or a preset names it; None when the table lacks it."""
    if not name:
        return None
    return _table()[1].get(_norm(name))


def all_gpu_facts() -> dict[str, GpuFacts]:
    return dict(_table()[0])
