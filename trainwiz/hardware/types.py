"""What the hardware probe returns: plain, immutable values that cross module boundaries.

Every reading is optional (``None``) because NVML may not support it on a given GPU, may deny it,
or the GPU may have fallen off the bus. Sizes are bytes; power is watts; temperature is Celsius;
utilization is percent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    memory_used: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class MigDevice:
    """One MIG instance of a GPU in MIG mode (what ``CUDA_VISIBLE_DEVICES=MIG-...`` selects)."""

    uuid: str | None
    name: str | None = None
    memory_total: int | None = None
    memory_used: int | None = None


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total: int | None
    uuid: str | None = None
    memory_used: int | None = None
    memory_free: int | None = None
    utilization: float | None = None
    temperature: float | None = None
    power_draw: float | None = None
    power_limit: float | None = None
    compute_capability: str | None = None  # "9.0"
    pci_bus_id: str | None = None
    mig: bool = False
    processes: tuple[GpuProcess, ...] = ()
    # Added by the hardware probe (additive; all optional):
    mig_devices: tuple[MigDevice, ...] = ()
    error: str | None = None  # e.g. "GPU is lost": the GPU is listed but cannot be read
    # Links, for the time estimate (None: not known). PCIe: the best generation and width this
    # GPU and its slot allow (the current ones drop when idle); NVLink: links that are up.
    pcie_gen: int | None = None
    pcie_width: int | None = None
    nvlink_links: int | None = None

    @property
    def supports_bf16(self) -> bool | None:
        if self.compute_capability is None:
            return None
        return float(self.compute_capability) >= 8.0

    def to_json(self) -> dict:
        """The `trainwiz gpus --json` record (DESIGN.md contract; extra keys only added)."""
        data = asdict(self)
        # the contract's pid and memory_used, and the name the table shows (null when unknown)
        data["processes"] = [{"pid": p.pid, "memory_used": p.memory_used, "name": p.name}
                             for p in self.processes]
        return data


@dataclass(frozen=True)
class HostInfo:
    cpu_count: int | None = None
    ram_total: int | None = None
    ram_available: int | None = None


@dataclass(frozen=True)
class Detection:
    """The result of probing a box: its GPUs, the host, and where the facts came from."""

    gpus: tuple[GpuInfo, ...]
    host: HostInfo
    source: str  # "nvml" | "simulated" | "none"
    message: str | None = None  # one line for the user when there is no GPU or NVML failed
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GpuSnapshot:
    """One timestamped reading of every GPU (what the monitor's sampler produces)."""

    timestamp: float  # time.time()
    gpus: tuple[GpuInfo, ...]
