"""Planning mode: a simulated GPU box from a spec such as ``8xH100-80GB`` or a YAML file.

Spec grammar (case and punctuation forgiving where unambiguous)::

    SPEC   := GROUP (("," | "+") GROUP)*  |  path/to/box.yaml
    GROUP  := [N ("x" | "*")] PRESET          e.g. 8xH100-80GB, 2x4090, h100, 4xA100-80GB+4xL4

YAML file (mixed boxes, busy GPUs)::

    gpus:
      - preset: H100-80GB
        count: 4
      - preset: A100-80GB
        memory_used: 30GiB          # already taken by someone else's job
        utilization: 97
        processes:
          - {pid: 4242, memory_used: 30GiB, name: python}
      - name: My custom card        # no preset: name and memory_total are required
        memory_total: 48GiB
        compute_capability: "8.6"
    host:                           # optional: plan for the host's CPUs/RAM too
      cpu_count: 96
      ram_total: 1TiB

Sizes are bytes (an integer) or a number with a unit, read as everywhere in trainwiz
(:mod:`trainwiz.units`): KiB/MiB/GiB/TiB and a bare K/M/G/T are powers of 1024, KB/MB/GB/TB
powers of 1000.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

from trainwiz import safeyaml
from trainwiz.checker import Checker, Spec, key_label, parse_yaml, type_name
from trainwiz.errors import TrainwizError
from trainwiz.hardware.presets import (
    PRESETS,
    GpuPreset,
    find_preset,
    preset_names,
    unknown_preset_message,
)
from trainwiz.hardware.types import GpuInfo, GpuProcess

MAX_GPUS = 256
_UUID_NS = uuid.UUID("5d1e4a1c-9b0e-4c55-9a53-7f7a3b1f0a11")
_GROUP = re.compile(r"^\s*(?:(\d+)\s*[x×*]\s*)?(.+?)\s*$", re.IGNORECASE)



def _usage() -> str:
    return (f"Presets: {preset_names()}. Write NxPRESET (e.g. 8xH100-80GB, 2x4090), "
            "join groups with '+', or give a YAML file (see `trainwiz gpus --help`).")


def _fake_uuid(seed: str, index: int) -> str:
    return "GPU-" + str(uuid.uuid5(_UUID_NS, f"{seed}/{index}"))


def _from_preset(preset: GpuPreset, index: int, seed: str, **over) -> GpuInfo:
    used = over.pop("memory_used", None) or 0
    util = over.pop("utilization", None)
    util = 0.0 if util is None else float(util)
    power_limit = over.pop("power_limit", None) or preset.power_limit
    power = over.pop("power_draw", None)
    if power is None:
        power = preset.idle_power + (power_limit - preset.idle_power) * util / 100.0
    temperature = over.pop("temperature", None)
    if temperature is None:
        temperature = 30.0 + (index * 3) % 7 + 0.45 * util
    total = over.pop("memory_total", None) or preset.memory_total
    gpu = GpuInfo(
        index=index,
        name=over.pop("name", None) or preset.name,
        memory_total=total,
        uuid=_fake_uuid(seed, index),
        memory_used=min(used, total),
        memory_free=max(total - used, 0),
        utilization=util,
        temperature=round(float(temperature), 1),
        power_draw=round(float(power), 1),
        power_limit=float(power_limit),
        compute_capability=over.pop("compute_capability", None) or preset.compute_capability,
        pci_bus_id=f"00000000:{(0x18 + 0x11 * index) % 0xF0 + 0x0F:02X}:00.0",
        processes=tuple(over.pop("processes", ()) or ()),
        pcie_gen=preset.pcie_gen, pcie_width=preset.pcie_width, nvlink_links=preset.nvlink_links,
    )
    assert not over, over
    return gpu


def _parse_groups(spec: str) -> list[GpuInfo]:
    gpus: list[GpuInfo] = []
    for group in re.split(r"[,+]", spec):
        if not group.strip():
            raise TrainwizError(f"simulate spec {spec!r}: empty GPU group. {_usage()}")
        match = _GROUP.match(group)
        count = int(match.group(1)) if match.group(1) else 1
        name = match.group(2)
        found = find_preset(name)
        if isinstance(found, list):
            raise TrainwizError(
                f"simulate spec {spec!r}: {unknown_preset_message(name, found)}. {_usage()}")
        if count < 1:
            raise TrainwizError(f"simulate spec {spec!r}: the GPU count must be at least 1. "
                                f"{_usage()}")
        for _ in range(count):
            gpus.append(_from_preset(found, len(gpus), spec))
        if len(gpus) > MAX_GPUS:
            raise TrainwizError(f"simulate spec {spec!r}: at most {MAX_GPUS} GPUs per box")
    return gpus


# The box file, described once: what each key holds and allows.
_BOX = {"gpus": Spec("list", help="a box file has a 'gpus' list (and an optional 'host')",
                     required=True),
        "host": Spec("section")}
_ENTRY = {
    "preset": Spec("str"),
    "count": Spec("int", minimum=1),
    "name": Spec("str"),
    "memory_total": Spec("size"),
    "memory_used": Spec("size", minimum=0),
    "utilization": Spec("float", minimum=0, maximum=100),
    "temperature": Spec("float", minimum=-50, maximum=150),
    "power_draw": Spec("float", minimum=0),
    "power_limit": Spec("float", minimum=1),
    "compute_capability": Spec("str", pattern=r"\d+\.\d+", help='MAJOR.MINOR such as "8.6"'),
    "processes": Spec("list"),
}
_PROCESS = {"pid": Spec("int", minimum=0, required=True, help="a process id (a whole number)"),
            "memory_used": Spec("size", minimum=0), "name": Spec("str")}
_HOST = {"cpu_count": Spec("int", minimum=1), "ram_total": Spec("size"),
         "ram_available": Spec("size", minimum=0)}


def _load_yaml(path: Path, chk_source: str) -> tuple[object, dict]:
    try:
        with open(path, "rb") as fh:  # bounded: safeyaml refuses anything over its limit
            text = fh.read(safeyaml.MAX_BYTES + 1).decode("utf-8", "replace")
    except OSError as exc:
        raise TrainwizError(f"{path}: cannot read the simulated box file ({exc.strerror})")
    data, lines = parse_yaml(text, chk_source)
    if isinstance(data, list):  # a bare list of GPUs
        data, lines = {"gpus": data}, {("gpus",) + k: v for k, v in lines.items()}
    return data, lines


def _entry(chk: Checker, entry: dict, at: tuple) -> tuple[GpuPreset, dict, int] | None:
    """One mapping of the gpus list: its preset (or custom card), overrides and count."""
    got = chk.section(entry, _ENTRY, at)
    if "preset" in got:
        found = find_preset(got["preset"])
        if isinstance(found, list):
            if len(found) > 1:
                chk.add(at + ("preset",), f"key '{key_label(at + ('preset',))}': "
                                          f"{unknown_preset_message(got['preset'], found)}")
            else:
                chk.bad_choice(at + ("preset",), got["preset"], PRESETS,
                               suggest=found[0].key if found else None)
            return None
        preset = found
    elif "name" in entry or "memory_total" in entry:
        missing = [k for k in ("name", "memory_total") if k not in entry]
        if missing:
            chk.add(at, f"key '{key_label(at)}': give a 'preset' ({preset_names()}) or both 'name' "
                        f"and 'memory_total' (missing {', '.join(missing)})")
            return None
        if "memory_total" not in got:
            return None
        preset = GpuPreset("custom", got["name"], got["memory_total"],
                           got.get("compute_capability"), 300.0, 30.0, "pcie")
    else:
        chk.add(at, f"key '{key_label(at)}': give a 'preset' ({preset_names()}) or both 'name' "
                    "and 'memory_total'")
        return None
    over = {k: v for k, v in got.items() if k not in ("preset", "count", "processes")}
    if "processes" in got:
        procs = []
        for j, item in enumerate(got["processes"]):
            p = chk.section(item, _PROCESS, at + ("processes", j))
            if "pid" in p:
                procs.append(GpuProcess(pid=p["pid"], memory_used=p.get("memory_used"),
                                        name=p.get("name")))
        over["processes"] = tuple(procs)
        if "memory_used" not in entry:
            over["memory_used"] = sum(p.memory_used or 0 for p in procs)
    return preset, over, got.get("count", 1)


def _parse_yaml_box(path: Path) -> tuple[list[GpuInfo], dict]:
    chk = Checker(str(path))
    data, chk.lines = _load_yaml(path, chk.source)
    top = chk.section(data, _BOX)
    gpus: list[GpuInfo] = []
    if "gpus" in top and not top["gpus"]:
        chk.add(("gpus",), "key 'gpus' must be a non-empty list of GPU entries")
    for i, entry in enumerate(top.get("gpus") or ()):
        at = ("gpus", i)
        if isinstance(entry, str):
            try:
                group = _parse_groups(entry)
            except TrainwizError as exc:
                chk.add(at, f"key '{key_label(at)}': {exc}")
                continue
            for gpu in group:
                gpus.append(replace(gpu, index=len(gpus), uuid=_fake_uuid(str(path), len(gpus))))
        elif not isinstance(entry, dict):
            chk.add(at, f"key '{key_label(at)}' must be a mapping such as {{preset: H100-80GB, "
                        f"count: 8}} or a spec such as 8xH100, not {type_name(entry)}")
        elif (read := _entry(chk, entry, at)) is not None:
            preset, over, count = read
            for _ in range(count):
                gpus.append(_from_preset(preset, len(gpus), str(path), **dict(over)))
        if len(gpus) > MAX_GPUS:
            chk.add(("gpus",), f"key 'gpus': more than {MAX_GPUS} GPUs; allowed: at most "
                               f"{MAX_GPUS} per box")
            break
    host = chk.section(top.get("host") or {}, _HOST, ("host",))
    chk.fail_if_any()
    if "ram_total" in host and "ram_available" not in host:
        host["ram_available"] = host["ram_total"]  # an idle planned box
    return gpus, host


def _looks_like_file(spec: str) -> bool:
    return (spec.lower().endswith((".yaml", ".yml")) or os.sep in spec or "/" in spec
            or os.path.isfile(spec))


def parse_box(spec: str) -> tuple[list[GpuInfo], dict]:
    """The simulated GPUs of ``spec`` and any host overrides (from a YAML file's ``host:``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise TrainwizError(f"empty simulate spec. {_usage()}")
    spec = spec.strip()
    if _looks_like_file(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TrainwizError(f"simulate spec {spec!r}: no such file. {_usage()}")
        return _parse_yaml_box(path)
    return _parse_groups(spec), {}


def parse_simulate(spec: str) -> list[GpuInfo]:
    """The GPUs of a simulated box: ``8xH100-80GB``, ``2x4090``, ``4xA100-80GB+4xL4`` or a YAML file.

    Raises :class:`trainwiz.errors.TrainwizError` (exit 2) naming the presets when the spec is bad.
    """
    return parse_box(spec)[0]


class SimulatedBackend:
    """Samples a simulated box. Given the pids that run on each simulated GPU (CPU ranks launched
    under simulation), a GPU's memory is the box's baseline plus those processes' real RSS and its
    utilization their CPU share, so the monitor shows real, moving numbers."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.gpus, self.host_overrides = parse_box(spec)
        self._procs: dict[int, object] = {}  # pid -> psutil.Process (keeps cpu_percent state)

    def _process(self, pid: int):
        import psutil

        proc = self._procs.get(pid)
        if proc is None:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # prime: the first call always returns 0.0
            self._procs[pid] = proc
        return proc

    def sample(self, pids_by_gpu: dict[int, list[int]] | None = None) -> tuple[GpuInfo, ...]:
        if not pids_by_gpu:
            return tuple(self.gpus)
        import psutil

        pids_by_gpu = {int(k): v for k, v in pids_by_gpu.items()}  # "0" from JSON is GPU 0

        out = []
        live: set[int] = set()
        for gpu in self.gpus:
            pids = pids_by_gpu.get(gpu.index) or ()
            if not pids:
                out.append(gpu)
                continue
            procs, rss_sum, cpu = [], 0, 0.0
            for pid in pids:
                try:
                    proc = self._process(int(pid))
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        cpu += proc.cpu_percent(None)
                        name = proc.name()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    self._procs.pop(int(pid), None)
                    continue
                live.add(int(pid))
                rss_sum += rss
                procs.append(GpuProcess(pid=int(pid), memory_used=rss, name=name))
            total = gpu.memory_total or 0
            used = min((gpu.memory_used or 0) + rss_sum, total) if total else rss_sum
            util = min(100.0, max(gpu.utilization or 0.0, cpu))
            preset_idle = gpu.power_draw or 0.0
            limit = gpu.power_limit or preset_idle
            out.append(replace(
                gpu,
                memory_used=used,
                memory_free=max(total - used, 0) if total else None,
                utilization=round(util, 1),
                power_draw=round(preset_idle + (limit - preset_idle) * util / 100.0 * 0.8, 1),
                temperature=round((gpu.temperature or 30.0) + 0.3 * util, 1),
                processes=gpu.processes + tuple(procs),
            ))
        for pid in list(self._procs):
            if pid not in live:
                self._procs.pop(pid, None)
        return tuple(out)


__all__ = ["PRESETS", "parse_simulate", "parse_box", "SimulatedBackend"]
