"""The NVML backend (nvidia-ml-py, imported as ``pynvml``).

Every reading is optional: a query that NVML answers with NotSupported, NoPermission, GPU-is-lost,
Unknown, ... becomes ``None`` (nvitop's ``nvmlQuery(func, default)`` idea), never an exception in a
panel. A box without the library or the driver is not an error either: :class:`NvmlUnavailable`
carries the one line to show, and the caller carries on in planning mode.

Only NVML is used: no CUDA context is created and torch is never imported. ``pynvml`` is imported
when a backend is opened, not when this module is imported; tests pass a stand-in ``module``.
"""

from __future__ import annotations

from dataclasses import replace

from trainwiz.hardware.types import GpuInfo, GpuProcess, MigDevice
from trainwiz.text import printable

_PLAN_HINT = "planning mode: use --simulate 8xH100-80GB (or TRAINWIZ_SIMULATE) to plan for a GPU box"

# nvmlDeviceGetTopologyCommonAncestor levels, in nvidia-smi topo's words
_TOPOLOGY = {0: "SELF", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}


_FAILED = object()


class NvmlUnavailable(Exception):
    """NVML cannot be used on this box; ``str(exc)`` is one line for the user."""


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return printable(str(value))  # a name the driver gives is shown on terminals as it is


def _init_message(nv, exc: BaseException) -> str:
    def is_(name: str) -> bool:
        cls = getattr(nv, name, None)
        return isinstance(cls, type) and isinstance(exc, cls)

    if is_("NVMLError_LibraryNotFound"):
        return f"No NVIDIA driver found (NVML library not loadable); {_PLAN_HINT}."
    if is_("NVMLError_DriverNotLoaded"):
        return f"The NVIDIA driver is not loaded, so no GPU is usable; {_PLAN_HINT}."
    if is_("NVMLError_NoPermission"):
        return f"No permission to query the GPUs through NVML; {_PLAN_HINT}."
    if is_("NVMLError_LibRmVersionMismatch"):
        return ("NVML and the NVIDIA kernel driver versions differ (reboot after a driver "
                f"upgrade?); {_PLAN_HINT}.")
    return f"NVML could not start ({exc}); {_PLAN_HINT}."


class NvmlBackend:
    """One NVML session: ``open()``, then ``read()`` as often as needed, then ``close()``.

    Slow, static fields (name, UUID, PCI bus id, totals, compute capability, power limit, MIG
    layout) are read once per GPU and cached; ``read()`` queries only what moves.
    """

    def __init__(self, module=None) -> None:
        self._module = module
        self.nv = None
        self._open = False
        self._handles: list = []
        self._handle_errors: dict[int, str] = {}
        self._static: dict[int, GpuInfo] = {}
        self._names: dict[int, str | None] = {}  # pid -> process name (psutil), cached
        self._lost: set[int] = set()
        self._proc_funcs: dict[str, str] = {}  # process-list function -> the variant that works
        self._errors: tuple = ()
        self._memory_v2: bool | None = None  # None: not tried yet
        self.last_error: BaseException | None = None

    # -- session -------------------------------------------------------------------------------
    def open(self) -> NvmlBackend:
        nv = self._module
        if nv is None:
            try:
                import pynvml as nv
            except ImportError:
                raise NvmlUnavailable(
                    f"nvidia-ml-py (pynvml) is not installed, so GPUs cannot be read; {_PLAN_HINT}."
                ) from None
        self.nv = nv
        # NVMLError and its subclasses; NVMLLibraryMismatchError (not a subclass) is what an
        # unversioned call raises when the driver lacks the function nvidia-ml-py maps it to.
        self._errors = tuple(c for c in (getattr(nv, "NVMLError", None),
                                         getattr(nv, "NVMLLibraryMismatchError", None))
                             if isinstance(c, type))
        try:
            nv.nvmlInit()
        except Exception as exc:  # NVMLError subclasses, or OSError from a broken library
            raise NvmlUnavailable(_init_message(nv, exc)) from None
        self._open = True
        try:
            count = int(nv.nvmlDeviceGetCount())
        except Exception as exc:
            self.close()
            raise NvmlUnavailable(f"NVML could not count the GPUs ({exc}); {_PLAN_HINT}.") from None
        self._handles = []
        for i in range(count):
            try:
                self._handles.append(nv.nvmlDeviceGetHandleByIndex(i))
            except nv.NVMLError as exc:
                self._handles.append(None)
                self._handle_errors[i] = str(exc)
        return self

    def close(self) -> None:
        if self._open:
            self._open = False
            self.query("nvmlShutdown")

    def __enter__(self) -> NvmlBackend:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def count(self) -> int:
        return len(self._handles)

    # -- queries -------------------------------------------------------------------------------
    def query(self, name: str, *args, default=None, index: int | None = None):
        """``pynvml.<name>(*args)``, or ``default`` when NVML cannot answer (never raises).

        A GPU-is-lost answer marks GPU ``index`` as lost.
        """
        nv = self.nv
        func = getattr(nv, name, None)
        if func is None:  # an older nvidia-ml-py without this function
            return default
        try:
            return func(*args)
        except self._errors as exc:
            self.last_error = exc
            lost = getattr(nv, "NVMLError_GpuIsLost", None)
            if index is not None and lost is not None and isinstance(exc, lost):
                self._lost.add(index)
            return default
        except (TypeError, ValueError, OSError):  # a stale or odd binding: treat as unsupported
            return default

    def driver_versions(self) -> tuple[str | None, str | None]:
        driver = _text(self.query("nvmlSystemGetDriverVersion"))
        cuda = self.query("nvmlSystemGetCudaDriverVersion")
        cuda_text = None
        if isinstance(cuda, int) and cuda > 0:
            cuda_text = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        return driver, cuda_text

    def _static_info(self, i: int) -> GpuInfo:
        cached = self._static.get(i)
        if cached is not None:
            return cached
        h = self._handles[i]
        if h is None:
            info = GpuInfo(index=i, name="unknown GPU", memory_total=None,
                           error=self._handle_errors.get(i) or "GPU cannot be opened")
            self._static[i] = info
            return info
        q = self.query
        nv = self.nv
        name = _text(q("nvmlDeviceGetName", h, index=i)) or "unknown GPU"
        uuid = _text(q("nvmlDeviceGetUUID", h, index=i))
        pci = q("nvmlDeviceGetPciInfo", h, index=i)
        bus_id = _text(getattr(pci, "busId", None)) if pci is not None else None
        cc = q("nvmlDeviceGetCudaComputeCapability", h, index=i)
        cc_text = f"{cc[0]}.{cc[1]}" if isinstance(cc, (tuple, list)) and len(cc) == 2 else None
        limit = q("nvmlDeviceGetEnforcedPowerLimit", h, index=i)
        if limit is None:
            limit = q("nvmlDeviceGetPowerManagementLimit", h, index=i)
        mem = q("nvmlDeviceGetMemoryInfo", h, index=i)
        total = getattr(mem, "total", None)
        mig_mode = q("nvmlDeviceGetMigMode", h, index=i)
        mig = bool(mig_mode) and mig_mode[0] == getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1)
        pcie_gen = q("nvmlDeviceGetMaxPcieLinkGeneration", h, index=i)
        pcie_width = q("nvmlDeviceGetMaxPcieLinkWidth", h, index=i)
        info = GpuInfo(
            index=i, name=name, memory_total=int(total) if total is not None else None, uuid=uuid,
            power_limit=limit / 1000.0 if isinstance(limit, (int, float)) else None,
            compute_capability=cc_text, pci_bus_id=bus_id, mig=mig,
            mig_devices=self._mig_devices(h, i) if mig else (),
            pcie_gen=int(pcie_gen) if isinstance(pcie_gen, int) and pcie_gen > 0 else None,
            pcie_width=int(pcie_width) if isinstance(pcie_width, int) and pcie_width > 0 else None,
            nvlink_links=self._nvlink_links(h, i),
        )
        if i not in self._lost:  # don't cache a half-read lost GPU: it may come back
            self._static[i] = info
        return info

    def _nvlink_links(self, h, i: int) -> int | None:
        """NVLink links that are up: 0 on a GPU without NVLink (NotSupported), None when NVML
        cannot tell. Links past the GPU's last answer InvalidArgument: the count stops there."""
        nv = self.nv
        if getattr(nv, "nvmlDeviceGetNvLinkState", None) is None:
            return None
        not_supported = getattr(nv, "NVMLError_NotSupported", None)
        enabled = getattr(nv, "NVML_FEATURE_ENABLED", 1)
        up = 0
        for link in range(int(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18))):
            state = self.query("nvmlDeviceGetNvLinkState", h, link, default=_FAILED, index=i)
            if state is _FAILED:
                if link == 0:
                    no_link = isinstance(not_supported, type) and isinstance(self.last_error, not_supported)
                    return 0 if no_link else None
                break
            up += state == enabled
        return up

    def _mig_devices(self, h, i: int) -> tuple[MigDevice, ...]:
        count = self.query("nvmlDeviceGetMaxMigDeviceCount", h, default=0, index=i) or 0
        out = []
        for j in range(int(count)):
            mh = self.query("nvmlDeviceGetMigDeviceHandleByIndex", h, j, index=i)
            if mh is None:  # empty slot (NVMLError_NotFound)
                continue
            mem = self.query("nvmlDeviceGetMemoryInfo", mh, index=i)
            out.append(MigDevice(
                uuid=_text(self.query("nvmlDeviceGetUUID", mh, index=i)),
                name=_text(self.query("nvmlDeviceGetName", mh, index=i)),
                memory_total=getattr(mem, "total", None),
                memory_used=getattr(mem, "used", None),
            ))
        return tuple(out)

    def _memory(self, h, i: int):
        """Memory info as nvidia-smi shows it: the v2 struct's ``used`` leaves out the memory the
        driver reserves (v1 counts it as used); ``free`` is the same in both. Older drivers only
        have v1, and then we stay on v1."""
        version = getattr(self.nv, "nvmlMemory_v2", None)
        if version is not None and self._memory_v2 is not False:
            mem = self.query("nvmlDeviceGetMemoryInfo", h, version, index=i)
            if mem is not None:
                self._memory_v2 = True
                return mem
            if self._memory_v2 is None and not isinstance(
                    self.last_error, getattr(self.nv, "NVMLError_GpuIsLost", ())):
                self._memory_v2 = False  # unsupported here: use v1 from now on
        return self.query("nvmlDeviceGetMemoryInfo", h, index=i)

    def _is_version_mismatch(self, exc) -> bool:
        kinds = tuple(c for c in (getattr(self.nv, "NVMLLibraryMismatchError", None),
                                  getattr(self.nv, "NVMLError_FunctionNotFound", None))
                      if isinstance(c, type))
        return bool(kinds) and isinstance(exc, kinds)

    def _process_name(self, pid: int) -> str | None:
        if pid in self._names:
            return self._names[pid]
        name = None
        try:
            import psutil

            name = printable(psutil.Process(pid).name())  # any user may name a process
        except Exception:  # another container's pid namespace, gone, or denied
            name = None
        if len(self._names) > 4096:
            self._names.clear()
        self._names[pid] = name
        return name

    def _processes(self, h, i: int) -> tuple[GpuProcess, ...]:
        by_pid: dict[int, GpuProcess] = {}
        for base in ("nvmlDeviceGetComputeRunningProcesses",
                     "nvmlDeviceGetGraphicsRunningProcesses"):
            func = self._proc_funcs.get(base, base)
            found = self.query(func, h, default=_FAILED, index=i)
            if found is _FAILED and func == base and self._is_version_mismatch(self.last_error):
                # the driver predates the struct nvidia-ml-py's unversioned call expects
                self._proc_funcs[base] = base + "_v2"
                found = self.query(base + "_v2", h, default=(), index=i)
            for p in found if found is not _FAILED else ():
                pid = getattr(p, "pid", None)
                if pid is None:
                    continue
                mem = getattr(p, "usedGpuMemory", None)
                mem = int(mem) if isinstance(mem, int) else None
                old = by_pid.get(pid)
                if old is not None and (old.memory_used or 0) >= (mem or 0):
                    continue
                by_pid[pid] = GpuProcess(pid=int(pid), memory_used=mem,
                                         name=self._process_name(int(pid)))
        return tuple(by_pid[pid] for pid in sorted(by_pid))

    def read(self, i: int) -> GpuInfo:
        """One GPU now: the cached static fields plus memory, utilization, temperature, power and
        processes. Unavailable readings are ``None``; a lost GPU says so in ``error``."""
        info = self._static_info(i)
        h = self._handles[i]
        if h is None:
            return info
        q = self.query
        nv = self.nv
        mem = self._memory(h, i)
        util = q("nvmlDeviceGetUtilizationRates", h, index=i)
        temp = q("nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0), index=i)
        power = q("nvmlDeviceGetPowerUsage", h, index=i)
        total = getattr(mem, "total", None)
        used = getattr(mem, "used", None)
        free = getattr(mem, "free", None)
        gpu_util = getattr(util, "gpu", None)
        out = replace(
            info,
            memory_total=int(total) if total is not None else info.memory_total,
            memory_used=int(used) if used is not None else None,
            memory_free=int(free) if free is not None else None,
            utilization=float(gpu_util) if gpu_util is not None else None,
            temperature=float(temp) if isinstance(temp, (int, float)) else None,
            power_draw=power / 1000.0 if isinstance(power, (int, float)) else None,
            processes=self._processes(h, i),
        )
        if i in self._lost:
            self._lost.discard(i)
            self._static.pop(i, None)
            out = replace(out, error="GPU is lost")
        return out

    def read_all(self) -> tuple[GpuInfo, ...]:
        return tuple(self.read(i) for i in range(self.count))

    def topology(self) -> list[dict]:
        """How each pair of GPUs is connected: ``NVLINK`` where P2P over NVLink is available,
        else the nearest common PCIe ancestor as nvidia-smi topo names it (PIX, PXB, PHB, NODE,
        SYS). Pairs NVML cannot tell about are left out."""
        nv = self.nv
        nvlink_idx = getattr(nv, "NVML_P2P_CAPS_INDEX_NVLINK", 2)
        ok = getattr(nv, "NVML_P2P_STATUS_OK", 0)
        links = []
        for i in range(self.count):
            for j in range(i + 1, self.count):
                a, b = self._handles[i], self._handles[j]
                if a is None or b is None:
                    continue
                link = None
                if self.query("nvmlDeviceGetP2PStatus", a, b, nvlink_idx) == ok:
                    link = "NVLINK"
                else:
                    level = self.query("nvmlDeviceGetTopologyCommonAncestor", a, b)
                    link = _TOPOLOGY.get(level) if level is not None else None
                if link is not None:
                    links.append({"gpus": [i, j], "link": link})
        return links
