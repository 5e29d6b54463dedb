"""The Slurm cluster as plannable hardware: partitions, their nodes, GPUs per node and type.

Read from ``sinfo`` (one line per node and partition: state, CPUs, memory, generic resources).
GPUs come from the ``gpu`` generic resource (``gpu:a100:8(S:0-1)``, ``gpu:8``); their memory is
not something Slurm knows, so it comes from trainwiz's GPU presets when the GRES type names one
card (``h100`` -> H100-80GB) and is unknown (None) otherwise (``a100``: 40 or 80 GB?).

The text from Slurm (names, states, messages) is kept as plain strings; callers print it as
text, never as markup.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field

from trainwiz.errors import TrainwizError
from trainwiz.hardware.presets import find_preset

MiB = 1 << 20
SINFO_FORMAT = "%N|%P|%T|%c|%m|%G"


class SlurmMissing(TrainwizError):
    """No Slurm here: the client commands are not on PATH, or they find no cluster."""


class SlurmError(TrainwizError):
    """A Slurm command refused or failed; the message is Slurm's own."""


def slurm_tool(name: str) -> str:
    """The path of a Slurm client command, or SlurmMissing naming it."""
    path = shutil.which(name)
    if not path:
        raise SlurmMissing(f"no Slurm on this machine: `{name}` is not on PATH (run trainwiz on "
                           "the cluster's login node, or install the Slurm client)")
    return path


def slurm_message(text: str) -> str:
    """Slurm's own message, one line: the last ``error:``/``fatal:`` line of its stderr."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error:" in ln or "fatal:" in ln:
            return ln
    return lines[-1] if lines else "no message"


def run_slurm(argv: list[str], *, timeout: float = 30) -> str:
    """Run a Slurm client command; its stdout, or SlurmError with Slurm's own message."""
    exe = slurm_tool(argv[0])
    try:
        out = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(argv)}` did not answer in {timeout:.0f} s "
                         "(is slurmctld up?)") from None
    except OSError as exc:
        raise SlurmError(f"could not run {exe}: {exc}") from None
    if out.returncode != 0:
        msg = slurm_message(out.stderr or out.stdout)
        if "Could not establish a configuration source" in (out.stderr or "") or \
                "Unable to contact slurm controller" in (out.stderr or ""):
            raise SlurmMissing(f"no Slurm cluster reachable from this machine ({msg})")
        raise SlurmError(msg)
    return out.stdout


@dataclass(frozen=True)
class SlurmNode:
    name: str
    state: str  # sinfo's: idle, mixed, allocated, down*, drained, ...
    cpus: int | None
    memory: int | None  # bytes (Slurm's RealMemory)
    gpus: int = 0
    gpu_type: str | None = None
    gres: str | None = None  # as Slurm wrote it


@dataclass(frozen=True)
class SlurmPartition:
    name: str
    default: bool
    nodes: tuple[SlurmNode, ...] = field(default_factory=tuple)

    @property
    def gpus_per_node(self) -> int:
        """GPUs on the partition's most common node (0: a CPU partition)."""
        if not self.nodes:
            return 0
        return Counter(n.gpus for n in self.nodes).most_common(1)[0][0]

    @property
    def gpu_type(self) -> str | None:
        types = Counter(n.gpu_type for n in self.nodes if n.gpus)
        return types.most_common(1)[0][0] if types else None

    @property
    def states(self) -> dict[str, int]:
        return dict(Counter(n.state for n in self.nodes))

    def to_json(self) -> dict:
        plan = partition_plan(self)
        return {"partition": self.name, "default": self.default, "nodes": len(self.nodes),
                "gpus_per_node": self.gpus_per_node, "gpu_type": self.gpu_type,
                "gpu_memory": plan.gpu_memory, "gpu_preset": plan.preset,
                "states": self.states,
                "node_list": [{"name": n.name, "state": n.state, "cpus": n.cpus,
                               "memory": n.memory, "gpus": n.gpus, "gpu_type": n.gpu_type,
                               "gres": n.gres} for n in self.nodes]}


_GPU_GRES = re.compile(r"^gpu(?::([^:(]+))?:(\d+)")


def parse_gres(gres: str | None) -> tuple[int, str | None]:
    """GPUs and their type from a GRES string: ``gpu:a100:8(S:0-1),mps:400`` -> (8, "a100")."""
    if not gres or gres in ("(null)", "N/A"):
        return 0, None
    count, kind = 0, None
    for item in re.split(r",(?![^(]*\))", gres):
        m = _GPU_GRES.match(item.strip())
        if m:
            count += int(m.group(2))
            kind = kind or m.group(1)
    return count, kind


def _int(text: str) -> int | None:
    text = text.strip().rstrip("+")
    return int(text) if text.isdigit() else None


def parse_sinfo(text: str) -> list[SlurmPartition]:
    """Partitions from ``sinfo -h -N -o '%N|%P|%T|%c|%m|%G'`` (one line per node and partition)."""
    order: list[str] = []
    nodes: dict[str, list[SlurmNode]] = {}
    default: dict[str, bool] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 6:
            continue
        name, part, state, cpus, mem, gres = parts[:6]
        is_default = part.endswith("*")
        part = part.rstrip("*")
        if part not in nodes:
            order.append(part)
            nodes[part] = []
        default[part] = default.get(part, False) or is_default
        gpus, kind = parse_gres(gres)
        memory = _int(mem)
        nodes[part].append(SlurmNode(name=name, state=state, cpus=_int(cpus),
                                     memory=memory * MiB if memory is not None else None,
                                     gpus=gpus, gpu_type=kind,
                                     gres=None if gres in ("(null)", "") else gres))
    return [SlurmPartition(name=p, default=default[p], nodes=tuple(nodes[p])) for p in order]


def partitions() -> list[SlurmPartition]:
    """The cluster's partitions, as sinfo reports them now. SlurmMissing when there is no Slurm."""
    return parse_sinfo(run_slurm(["sinfo", "-h", "-N", "-o", SINFO_FORMAT]))


@dataclass(frozen=True)
class PartitionPlan:
    """What the estimator plans for on a partition: N nodes x G GPUs of one type."""

    partition: str
    nodes: int
    gpus_per_node: int
    gpu_type: str | None
    preset: str | None  # trainwiz's preset for the GRES type, when it names one card
    gpu_memory: int | None  # bytes per GPU; None: unknown (give --gpu-memory)

    def estimate_options(self, nodes: int | None = None) -> list[str]:
        """``trainwiz estimate`` options for ``nodes`` of this partition (default: all)."""
        n = nodes or self.nodes
        out = ["--num-gpus", str(max(1, n * self.gpus_per_node))]
        if self.gpu_memory:
            out += ["--gpu-memory", f"{self.gpu_memory // MiB}MiB"]
        return out


    def profile_fields(self, nodes: int | None = None) -> dict:
        """What a profile planned for ``nodes`` of this partition says (plain data, as in a
        profile file): submitted with Slurm, one rank per GPU of each node."""
        out: dict = {"scheduler": "slurm",
                     "slurm": {"partition": self.partition, "nodes": nodes or self.nodes}}
        if self.gpus_per_node:
            out["num_processes"] = self.gpus_per_node
        return out


def partition_plan(partition: SlurmPartition) -> PartitionPlan:
    """The partition as plannable hardware (what the wizard's "plan for" choice offers)."""
    kind = partition.gpu_type
    preset = None
    memory = None
    if kind:
        found = find_preset(kind)
        if not isinstance(found, list):
            preset, memory = found.key, found.memory_total
        elif found and len({p.memory_total for p in found}) == 1:
            memory = found[0].memory_total  # every card the name could be has this memory
    return PartitionPlan(partition=partition.name, nodes=len(partition.nodes),
                         gpus_per_node=partition.gpus_per_node, gpu_type=kind, preset=preset,
                         gpu_memory=memory)


def slurm_plans() -> list[PartitionPlan]:
    """Every partition as hardware to plan for (the wizard's "plan for" choices), default first.
    Raises SlurmMissing when there is no Slurm (say so once and offer only this machine)."""
    parts = partitions()
    return [partition_plan(p) for p in sorted(parts, key=lambda p: not p.default)]


def find_partition(name: str | None, parts: list[SlurmPartition]) -> SlurmPartition | None:
    """The partition a job would go to: ``name``, or the cluster's default when None."""
    for p in parts:
        if (name is None and p.default) or p.name == name:
            return p
    return None

