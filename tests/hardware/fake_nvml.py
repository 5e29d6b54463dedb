"""A stand-in for the ``pynvml`` module (nvidia-ml-py) that answers from a described GPU box.

It reproduces the functions trainwiz calls with pynvml's signatures, returns the same shapes
(str names/UUIDs, structs with ``total/used/free``, ``gpu``, ``busId`` bytes, process objects with
``pid``/``usedGpuMemory``), and fails the way the real module fails: by raising
``pynvml.NVMLError(code)`` from the REAL nvidia-ml-py, which maps the code to its real subclass
(``NVMLError_NotSupported``, ``NVMLError_GpuIsLost``, ...).

A box is a plain dict (so it can cross into a subprocess as JSON)::

    {"init_error": "LIBRARY_NOT_FOUND" | None,
     "driver": "550.54.15", "cuda": 12040,
     "gpus": [{"name": ..., "uuid": ..., "total": ..., "used": ..., "util": ..., "temp": ...,
               "power_mw": ..., "limit_mw": ..., "cc": [9, 0], "bus": "00000000:18:00.0",
               "procs": [[pid, bytes]], "gprocs": [[pid, bytes]],
               "numa": 0, "switch": "A",     # where it sits: PCIe switch, CPU socket
               "mig": [{"uuid": "MIG-...", "name": ..., "total": ..., "used": ...}],
               "pcie": [5, 16], "nvlinks": 18, "nvlinks_up": 18,
               "errors": {"nvmlDeviceGetTemperature": "NOT_SUPPORTED", "*": "GPU_IS_LOST"}}],
     "nvlink": [[0, 1]]}

Like the real library: utilization is NotSupported on a GPU in MIG mode, the process lists have
``_v2`` variants, and topology comes from where each GPU sits (same PCIe switch: SINGLE, same CPU
socket: NODE, else SYSTEM).

``errors`` maps a function name (or ``"*"`` for every per-device query, or ``"handle"`` for
``nvmlDeviceGetHandleByIndex``) to the NVML_ERROR_* code name to raise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from collections import Counter
from types import SimpleNamespace


def real_pynvml():
    """The real nvidia-ml-py module (also when this stand-in shadows the name in a subprocess)."""
    path = os.environ.get("FAKE_NVML_REAL_PATH")
    if not path:
        import pynvml

        return pynvml
    if "_real_pynvml" in sys.modules:
        return sys.modules["_real_pynvml"]
    spec = importlib.util.spec_from_file_location("_real_pynvml", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_real_pynvml"] = module
    spec.loader.exec_module(module)
    return module


# The functions trainwiz's NVML backend may call, and their parameters in nvidia-ml-py.
SURFACE = (
    "nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex",
    "nvmlSystemGetDriverVersion", "nvmlSystemGetCudaDriverVersion",
    "nvmlDeviceGetName", "nvmlDeviceGetUUID", "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetCudaComputeCapability", "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimit", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMigMode",
    "nvmlDeviceGetMaxMigDeviceCount", "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetGraphicsRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses_v2",
    "nvmlDeviceGetP2PStatus", "nvmlDeviceGetTopologyCommonAncestor",
    "nvmlDeviceGetMaxPcieLinkGeneration", "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetNvLinkState",
)


def build(box: dict) -> types.ModuleType:
    """A module object with pynvml's surface for ``box``; ``module.calls`` counts the calls."""
    real = real_pynvml()
    nv = types.ModuleType("pynvml")
    for name in dir(real):  # the real exception classes and NVML_* constants
        if name.startswith(("NVMLError", "NVML_", "NVMLLibraryMismatchError", "nvmlMemory_v")):
            setattr(nv, name, getattr(real, name))
    calls: Counter = Counter()
    nv.calls = calls
    state = {"init": 0}
    gpus = box.get("gpus", [])

    def fail(code_name: str):
        if code_name == "LIBRARY_MISMATCH":  # an unversioned call on an older driver
            raise real.NVMLLibraryMismatchError("Unversioned function called and the pyNVML "
                                                "version does not match the NVML lib version.")
        raise real.NVMLError(getattr(real, "NVML_ERROR_" + code_name))

    def check_init():
        if state["init"] <= 0:
            fail("UNINITIALIZED")

    def dev(name, handle):
        calls[name] += 1
        check_init()
        idx, mig = handle
        errors = gpus[idx].get("errors", {})
        code = errors.get(name) or errors.get("*")
        if code:
            fail(code)
        return gpus[idx], mig

    def nvmlInit():
        calls["nvmlInit"] += 1
        if box.get("init_error"):
            fail(box["init_error"])
        state["init"] += 1

    def nvmlShutdown():
        calls["nvmlShutdown"] += 1
        check_init()
        state["init"] -= 1

    def nvmlDeviceGetCount():
        calls["nvmlDeviceGetCount"] += 1
        check_init()
        return len(gpus)

    def nvmlDeviceGetHandleByIndex(index):
        calls["nvmlDeviceGetHandleByIndex"] += 1
        check_init()
        if not 0 <= index < len(gpus):
            fail("INVALID_ARGUMENT")
        code = gpus[index].get("errors", {}).get("handle")
        if code:
            fail(code)
        return (index, None)

    def nvmlSystemGetDriverVersion():
        calls["nvmlSystemGetDriverVersion"] += 1
        check_init()
        return box.get("driver", "550.54.15")

    def nvmlSystemGetCudaDriverVersion():
        calls["nvmlSystemGetCudaDriverVersion"] += 1
        check_init()
        return box.get("cuda", 12040)

    def nvmlDeviceGetName(handle):
        g, mig = dev("nvmlDeviceGetName", handle)
        return g["mig"][mig]["name"] if mig is not None else g["name"]

    def nvmlDeviceGetUUID(handle):
        g, mig = dev("nvmlDeviceGetUUID", handle)
        return g["mig"][mig]["uuid"] if mig is not None else g["uuid"]

    def nvmlDeviceGetPciInfo(handle):
        g, _ = dev("nvmlDeviceGetPciInfo", handle)
        return SimpleNamespace(busId=g["bus"].encode(), busIdLegacy=g["bus"][4:].encode())

    def nvmlDeviceGetCudaComputeCapability(handle):
        g, _ = dev("nvmlDeviceGetCudaComputeCapability", handle)
        return tuple(g["cc"])

    def nvmlDeviceGetEnforcedPowerLimit(handle):
        g, _ = dev("nvmlDeviceGetEnforcedPowerLimit", handle)
        return g["limit_mw"]

    def nvmlDeviceGetPowerManagementLimit(handle):
        g, _ = dev("nvmlDeviceGetPowerManagementLimit", handle)
        return g["limit_mw"]

    def nvmlDeviceGetMemoryInfo(handle, version=None):
        g, mig = dev("nvmlDeviceGetMemoryInfo", handle)
        src = g["mig"][mig] if mig is not None else g
        reserved = src.get("reserved", 0)
        free = src["total"] - src["used"] - reserved
        if version is None:  # v1: the driver's reservation counts as used
            return SimpleNamespace(total=src["total"], used=src["used"] + reserved, free=free)
        if version != real.nvmlMemory_v2 or box.get("no_memory_v2"):
            fail("FUNCTION_NOT_FOUND" if box.get("no_memory_v2") else "ARGUMENT_VERSION_MISMATCH")
        return SimpleNamespace(version=version, total=src["total"], reserved=reserved,
                               used=src["used"], free=free)

    def nvmlDeviceGetMigMode(device):
        g, _ = dev("nvmlDeviceGetMigMode", device)
        if "mig" not in g:
            fail("NOT_SUPPORTED")
        return [real.NVML_DEVICE_MIG_ENABLE, real.NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(device):
        g, _ = dev("nvmlDeviceGetMaxMigDeviceCount", device)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(device, index):
        g, _ = dev("nvmlDeviceGetMigDeviceHandleByIndex", device)
        if index >= len(g.get("mig", [])):
            fail("NOT_FOUND")
        return (device[0], index)

    def nvmlDeviceGetUtilizationRates(handle):
        g, _ = dev("nvmlDeviceGetUtilizationRates", handle)
        if "mig" in g:  # NVML has no utilization for a GPU in MIG mode
            fail("NOT_SUPPORTED")
        return SimpleNamespace(gpu=g["util"], memory=g["util"] // 2)

    def nvmlDeviceGetTemperature(handle, sensor):
        g, _ = dev("nvmlDeviceGetTemperature", handle)
        if sensor != real.NVML_TEMPERATURE_GPU:
            fail("INVALID_ARGUMENT")
        return g["temp"]

    def nvmlDeviceGetPowerUsage(handle):
        g, _ = dev("nvmlDeviceGetPowerUsage", handle)
        return g["power_mw"]

    def _procs(items):
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem, gpuInstanceId=0xFFFFFFFF,
                                computeInstanceId=0xFFFFFFFF) for pid, mem in items]

    def nvmlDeviceGetComputeRunningProcesses(handle):
        g, _ = dev("nvmlDeviceGetComputeRunningProcesses", handle)
        return _procs(g.get("procs", []))

    def nvmlDeviceGetComputeRunningProcesses_v2(handle):
        g, _ = dev("nvmlDeviceGetComputeRunningProcesses_v2", handle)
        return _procs(g.get("procs", []))

    def nvmlDeviceGetGraphicsRunningProcesses(handle):
        g, _ = dev("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return _procs(g.get("gprocs", []))

    def nvmlDeviceGetGraphicsRunningProcesses_v2(handle):
        g, _ = dev("nvmlDeviceGetGraphicsRunningProcesses_v2", handle)
        return _procs(g.get("gprocs", []))

    def pair(name, device1, device2):
        calls[name] += 1
        check_init()
        for d in (device1, device2):
            code = gpus[d[0]].get("errors", {}).get("*")
            if code:
                fail(code)

    def nvmlDeviceGetP2PStatus(device1, device2, p2pIndex):
        pair("nvmlDeviceGetP2PStatus", device1, device2)
        if (p2pIndex == real.NVML_P2P_CAPS_INDEX_NVLINK
                and sorted([device1[0], device2[0]]) in box.get("nvlink", [])):
            return real.NVML_P2P_STATUS_OK
        return real.NVML_P2P_STATUS_NOT_SUPPORTED

    def nvmlDeviceGetMaxPcieLinkGeneration(handle):
        g, _ = dev("nvmlDeviceGetMaxPcieLinkGeneration", handle)
        return g.get("pcie", [4, 16])[0]

    def nvmlDeviceGetMaxPcieLinkWidth(handle):
        g, _ = dev("nvmlDeviceGetMaxPcieLinkWidth", handle)
        return g.get("pcie", [4, 16])[1]

    def nvmlDeviceGetNvLinkState(device, link):
        # as the driver answers: NotSupported on a GPU without NVLink, InvalidArgument for a
        # link number past the GPU's last link (or past NVML_NVLINK_MAX_LINKS)
        g, _ = dev("nvmlDeviceGetNvLinkState", device)
        links = g.get("nvlinks", 0)
        if not links:
            fail("NOT_SUPPORTED")
        if not 0 <= link < min(links, real.NVML_NVLINK_MAX_LINKS):
            fail("INVALID_ARGUMENT")
        return real.NVML_FEATURE_ENABLED if link < g.get("nvlinks_up", links) else real.NVML_FEATURE_DISABLED

    def nvmlDeviceGetTopologyCommonAncestor(device1, device2):
        pair("nvmlDeviceGetTopologyCommonAncestor", device1, device2)
        a, b = gpus[device1[0]], gpus[device2[0]]
        if device1[0] == device2[0]:
            return real.NVML_TOPOLOGY_INTERNAL
        if a.get("switch") is not None and a.get("switch") == b.get("switch"):
            return real.NVML_TOPOLOGY_SINGLE
        if a.get("numa", 0) == b.get("numa", 0):
            return real.NVML_TOPOLOGY_NODE
        return real.NVML_TOPOLOGY_SYSTEM

    for name, func in list(locals().items()):
        if name in SURFACE:
            setattr(nv, name, func)
    missing = set(SURFACE) - set(vars(nv))
    assert not missing, missing
    return nv


def fake_nvml_env(tmp_path, box: dict) -> dict:
    """Env that makes ``import pynvml`` in a subprocess load the stand-in for ``box``."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shim = Path(tmp_path) / "fake_pynvml"
    shim.mkdir(exist_ok=True)
    (shim / "pynvml.py").write_text(
        "from tests.hardware.fake_nvml import install_from_env\ninstall_from_env(__name__)\n")
    return {
        "PYTHONPATH": os.pathsep.join([str(shim), str(root)]),
        "FAKE_NVML_BOX": json.dumps(box),
        "FAKE_NVML_REAL_PATH": real_pynvml().__file__,
    }


NO_DRIVER = {"init_error": "LIBRARY_NOT_FOUND", "gpus": []}


def install_from_env(module_name: str) -> None:
    """Used by a ``pynvml.py`` shim in a subprocess: become the stand-in for $FAKE_NVML_BOX."""
    nv = build(json.loads(os.environ["FAKE_NVML_BOX"]))
    module = sys.modules[module_name]
    for name, value in vars(nv).items():
        if not name.startswith("__"):
            setattr(module, name, value)


MiB = 1 << 20
GiB = 1 << 30


def sample_box() -> dict:
    """Four GPUs that exercise every error path: a healthy H100 with processes, one that
    supports little, one that is lost, and one in MIG mode whose process list fails."""
    h100 = dict(name="NVIDIA H100 80GB HBM3", total=81559 * MiB, cc=[9, 0], limit_mw=700_000,
                pcie=[5, 16], nvlinks=18)
    return {
        "driver": "550.54.15", "cuda": 12040,
        "nvlink": [[0, 1]],
        "gpus": [
            dict(h100, uuid="GPU-aaaaaaaa-1111-2222-3333-000000000000", bus="00000000:18:00.0",
                 switch="A", numa=0,
                 used=30 * GiB, reserved=527 * MiB, util=87, temp=64, power_mw=512_345,
                 procs=[[1111, 20 * GiB], [2222, 10 * GiB]], gprocs=[[2222, 1 * GiB], [3333, None]]),
            dict(h100, uuid="GPU-bbbbbbbb-1111-2222-3333-000000000001", bus="00000000:2A:00.0",
                 switch="A", numa=0,
                 used=0, util=0, temp=0, power_mw=0, procs=[],
                 errors={"nvmlDeviceGetTemperature": "NOT_SUPPORTED",
                         "nvmlDeviceGetPowerUsage": "NOT_SUPPORTED",
                         "nvmlDeviceGetUtilizationRates": "NO_PERMISSION",
                         "nvmlDeviceGetComputeRunningProcesses": "NO_PERMISSION",
                         "nvmlDeviceGetEnforcedPowerLimit": "NOT_SUPPORTED",
                         "nvmlDeviceGetPowerManagementLimit": "NOT_SUPPORTED"}),
            dict(h100, uuid="GPU-cccccccc-1111-2222-3333-000000000002", bus="00000000:3A:00.0",
                 used=0, util=0, temp=30, power_mw=70_000, errors={"*": "GPU_IS_LOST"}),
            dict(name="NVIDIA A100-SXM4-80GB", uuid="GPU-dddddddd-1111-2222-3333-000000000003",
                 bus="00000000:5D:00.0", total=81920 * MiB, used=5 * GiB, cc=[8, 0], numa=1,
                 limit_mw=400_000, util=12, temp=41, power_mw=90_000, pcie=[4, 16], nvlinks=12,
                 nvlinks_up=10,
                 mig=[{"uuid": "MIG-11111111-2222-3333-4444-555555555555",
                       "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "total": 40192 * MiB,
                       "used": 3 * GiB},
                      {"uuid": "MIG-66666666-2222-3333-4444-555555555555",
                       "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "total": 40192 * MiB,
                       "used": 0}],
                 errors={"nvmlDeviceGetComputeRunningProcesses": "UNKNOWN"}),
        ],
    }
