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
from trainwiz.errors import TrainwizError
from trainwiz.hardware.presets import (
    PRESETS,
    GpuPreset,
    find_preset,
    preset_names,
    unknown_preset_message,
)
from trainwiz.hardware.types import GpuInfo, GpuProcess
from trainwiz.units import parse_size

MAX_GPUS = 256
_UUID_NS = uuid.UUID("5d1e4a1c-9b0e-4c55-9a53-7f7a3b1f0a11")
_GROUP = re.compile(r"^\s*(?:(\d+)\s*[x×*]\s*)?(.+?)\s*$", re.IGNORECASE)

_ENTRY_KEYS = ("preset", "count", "name", "memory_total", "memory_used", "utilization",
               "temperature", "power_draw", "power_limit", "compute_capability", "processes")
_HOST_KEYS = ("cpu_count", "ram_total", "ram_available")


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


def _load_yaml(path: Path):
    import yaml

    try:
        with open(path, "rb") as fh:  # bounded: safeyaml refuses anything over its limit
            text = fh.read(safeyaml.MAX_BYTES + 1).decode("utf-8", "replace")
    except OSError as exc:
        raise TrainwizError(f"{path}: cannot read the simulated box file ({exc.strerror})")
    try:
        data, _ = safeyaml.load(text, str(path))
    except yaml.YAMLError as exc:
        raise TrainwizError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})")
    if isinstance(data, list):
        data = {"gpus": data}
    if not isinstance(data, dict) or "gpus" not in data:
        raise TrainwizError(f"{path}: expected a mapping with a 'gpus' list (and optional 'host')")
    unknown = sorted(set(data) - {"gpus", "host"})
    if unknown:
        raise TrainwizError(f"{path}: unknown key {unknown[0]!r}; allowed: gpus, host")
    if not isinstance(data["gpus"], list) or not data["gpus"]:
        raise TrainwizError(f"{path}: 'gpus' must be a non-empty list of GPU entries")
    return data


def _number(value, where: str, lo: float, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrainwizError(f"{where}: expected a number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"{lo:g}..{hi:g}" if hi is not None else f">= {lo:g}"
        raise TrainwizError(f"{where}: {value!r} is out of range ({rng})")
    return float(value)


def _parse_processes(items, where: str) -> tuple[GpuProcess, ...]:
    if not isinstance(items, list):
        raise TrainwizError(f"{where}: expected a list of {{pid, memory_used, name}}")
    out = []
    for j, item in enumerate(items):
        w = f"{where}[{j}]"
        if not isinstance(item, dict) or "pid" not in item:
            raise TrainwizError(f"{w}: expected a mapping with 'pid' (and memory_used, name)")
        extra = sorted(set(item) - {"pid", "memory_used", "name"})
        if extra:
            raise TrainwizError(f"{w}: unknown key {extra[0]!r}; allowed: pid, memory_used, name")
        pid = item["pid"]
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
            raise TrainwizError(f"{w}.pid: expected a process id (a whole number), got {pid!r}")
        mem = item.get("memory_used")
        out.append(GpuProcess(pid=pid,
                              memory_used=None if mem is None else parse_size(mem, f"{w}.memory_used", positive=False),
                              name=None if item.get("name") is None else str(item["name"])))
    return tuple(out)


def _parse_yaml_box(path: Path) -> tuple[list[GpuInfo], dict]:
    data = _load_yaml(path)
    gpus: list[GpuInfo] = []
    for i, entry in enumerate(data["gpus"]):
        where = f"{path}: gpus[{i}]"
        if isinstance(entry, str):
            for gpu in _parse_groups(entry):
                gpus.append(replace(gpu, index=len(gpus), uuid=_fake_uuid(str(path), len(gpus))))
            continue
        if not isinstance(entry, dict):
            raise TrainwizError(f"{where}: expected a mapping such as {{preset: H100-80GB, count: 8}}")
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise TrainwizError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(_ENTRY_KEYS)}")
        over: dict = {}
        if "preset" in entry:
            found = find_preset(str(entry["preset"]))
            if isinstance(found, list):
                raise TrainwizError(f"{where}.preset: "
                                    f"{unknown_preset_message(str(entry['preset']), found)}; "
                                    f"allowed: {preset_names()}")
            preset = found
        else:
            missing = [k for k in ("name", "memory_total") if k not in entry]
            if missing:
                raise TrainwizError(f"{where}: give a 'preset' ({preset_names()}) or both 'name' "
                                    f"and 'memory_total' (missing {', '.join(missing)})")
            total = parse_size(entry["memory_total"], f"{where}.memory_total")
            preset = GpuPreset("custom", str(entry["name"]), total,
                               str(entry.get("compute_capability") or "") or None, 300.0, 30.0,
                               "pcie")
        if "name" in entry:
            over["name"] = str(entry["name"])
        if "memory_total" in entry:
            over["memory_total"] = parse_size(entry["memory_total"], f"{where}.memory_total")
        if "memory_used" in entry:
            over["memory_used"] = parse_size(entry["memory_used"], f"{where}.memory_used",
                                             positive=False)
        if "utilization" in entry:
            over["utilization"] = _number(entry["utilization"], f"{where}.utilization", 0, 100)
        if "temperature" in entry:
            over["temperature"] = _number(entry["temperature"], f"{where}.temperature", -50, 150)
        if "power_draw" in entry:
            over["power_draw"] = _number(entry["power_draw"], f"{where}.power_draw", 0)
        if "power_limit" in entry:
            over["power_limit"] = _number(entry["power_limit"], f"{where}.power_limit", 1)
        if "compute_capability" in entry:
            cc = str(entry["compute_capability"])
            if not re.fullmatch(r"\d+\.\d+", cc):
                raise TrainwizError(f"{where}.compute_capability: expected MAJOR.MINOR such as "
                                    f"\"8.6\", got {entry['compute_capability']!r}")
            over["compute_capability"] = cc
        if "processes" in entry:
            over["processes"] = _parse_processes(entry["processes"], f"{where}.processes")
            if "memory_used" not in entry:
                over["memory_used"] = sum(p.memory_used or 0 for p in over["processes"])
        count = entry.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise TrainwizError(f"{where}.count: expected a whole number >= 1, got {count!r}")
        for _ in range(count):
            gpus.append(_from_preset(preset, len(gpus), str(path), **dict(over)))
        if len(gpus) > MAX_GPUS:
            raise TrainwizError(f"{path}: at most {MAX_GPUS} GPUs per box")
    host = data.get("host") or {}
    if not isinstance(host, dict):
        raise TrainwizError(f"{path}: host: expected a mapping with {', '.join(_HOST_KEYS)}")
    unknown = sorted(set(host) - set(_HOST_KEYS))
    if unknown:
        raise TrainwizError(f"{path}: host: unknown key {unknown[0]!r}; allowed: {', '.join(_HOST_KEYS)}")
    host_over: dict = {}
    if "cpu_count" in host:
        c = host["cpu_count"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise TrainwizError(f"{path}: host.cpu_count: expected a whole number >= 1, got {c!r}")
        host_over["cpu_count"] = c
    for key in ("ram_total", "ram_available"):
        if key in host:
            host_over[key] = parse_size(host[key], f"{path}: host.{key}",
                                        positive=key == "ram_total")
    if "ram_total" in host_over and "ram_available" not in host_over:
        host_over["ram_available"] = host_over["ram_total"]  # an idle planned box
    return gpus, host_over


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
