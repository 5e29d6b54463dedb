"""Which GPUs a run will see: ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` as CUDA reads them.

NVML numbers GPUs in PCI bus order (what nvidia-smi shows). CUDA numbers them "fastest first"
unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; on a box of identical GPUs both orders are the same.
``CUDA_VISIBLE_DEVICES`` lists indices (in CUDA's order) or UUIDs (``GPU-…``, a unique prefix is
enough, ``MIG-…`` for a MIG instance); CUDA stops at the first entry it cannot resolve, and so do we.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from trainwiz.hardware.types import GpuInfo


def _cc(gpu: GpuInfo) -> tuple[int, int]:
    try:
        major, minor = (gpu.compute_capability or "0.0").split(".")
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def cuda_order(gpus: Sequence[GpuInfo], device_order: str | None = None) -> list[GpuInfo]:
    """GPUs in the order CUDA numbers them (``device_order``: ``PCI_BUS_ID`` or ``FASTEST_FIRST``;
    ``None`` reads ``$CUDA_DEVICE_ORDER``). "Fastest" is CUDA's own heuristic; we approximate it by
    compute capability, then memory, which only matters on boxes that mix GPU models."""
    if device_order is None:
        device_order = os.environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    pci = sorted(gpus, key=lambda g: (g.pci_bus_id or "", g.index)) if all(
        g.pci_bus_id for g in gpus) else sorted(gpus, key=lambda g: g.index)
    if device_order.strip().upper() == "PCI_BUS_ID":
        return pci
    return sorted(pci, key=lambda g: (_cc(g), g.memory_total or 0), reverse=True)


def mixed_models(gpus: Sequence[GpuInfo]) -> bool:
    """True when CUDA's default numbering may differ from nvidia-smi's (different GPU models)."""
    return len({(g.name, g.compute_capability) for g in gpus}) > 1


def _uuid_key(text: str) -> str:
    text = text.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def visible_gpus(gpus: Sequence[GpuInfo], cuda_visible_devices: str | None,
                 device_order: str | None = None) -> list[GpuInfo]:
    """The GPUs a process started with ``CUDA_VISIBLE_DEVICES=cuda_visible_devices`` will see, in
    its ``cuda:0, cuda:1, …`` order. ``None`` (unset) means all; ``""`` means none. Each GPU keeps
    its NVML ``index`` (what nvidia-smi shows); a MIG uuid gives that instance's memory and uuid."""
    ordered = cuda_order(gpus, device_order)
    if cuda_visible_devices is None:
        return ordered
    out: list[GpuInfo] = []
    seen: set[tuple[int, str | None]] = set()
    for token in cuda_visible_devices.split(","):
        token = token.strip()
        if not token:
            break
        found = _resolve(ordered, token)
        if found is None:
            break
        key = (found.index, found.uuid)
        if key in seen:  # CUDA rejects a device listed twice
            break
        seen.add(key)
        out.append(found)
    return out


def _resolve(ordered: list[GpuInfo], token: str) -> GpuInfo | None:
    if token.lstrip("+-").isdigit():
        n = int(token)
        return ordered[n] if 0 <= n < len(ordered) else None
    low = token.lower()
    if low.startswith("mig-"):
        rest = token[4:]
        if rest.lower().startswith("gpu-"):  # legacy MIG-GPU-<uuid>/<gi>/<ci>
            parent = _by_uuid(ordered, rest.split("/")[0])
            return parent
        for gpu in ordered:
            for mig in gpu.mig_devices:
                if mig.uuid and mig.uuid.lower() == low:
                    used, total = mig.memory_used, mig.memory_total
                    return replace(
                        gpu, uuid=mig.uuid, name=mig.name or f"{gpu.name} MIG",
                        memory_total=total, memory_used=used,
                        memory_free=(total - used) if total is not None and used is not None
                        else None,
                        processes=(), mig_devices=())
        return None
    return _by_uuid(ordered, token)


def _by_uuid(ordered: list[GpuInfo], token: str) -> GpuInfo | None:
    key = _uuid_key(token)
    if not key:
        return None
    exact = [g for g in ordered if g.uuid and _uuid_key(g.uuid) == key]
    if exact:
        return exact[0]
    prefix = [g for g in ordered if g.uuid and _uuid_key(g.uuid).startswith(key)]
    return prefix[0] if len(prefix) == 1 else None
