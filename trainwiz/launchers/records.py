"""What a run directory holds, as types: the run's state, its status record, its memory samples.

One description, shared by the supervisor that writes the files and by every reader (the CLI,
the monitor, the Runs screen). Files from disk are checked as data against these types
(:func:`status_from_file`): a ``status.json`` of ``{}``, ``null``, ``[]`` or with a field of the
wrong type is a :class:`DamagedStatus`, never a traceback further on.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass

from trainwiz.errors import TrainwizError


class RunState(enum.StrEnum):
    """A run's state (as torchrun's ``WorkerState``). Compares equal to its string value, which
    is what ``status.json`` and ``runs --json`` hold."""

    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    DAMAGED = "damaged"  # status.json unreadable or not a status: shown, stoppable, never hidden

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED)


TERMINAL = tuple(s for s in RunState if s.terminal)


class DamagedStatus(TrainwizError):
    """``status.json`` exists but is not a run status (damaged, truncated, forged)."""


@dataclass
class RankStatus:
    rank: int
    pid: int | None = None
    exit_code: int | None = None
    local_rank: int | None = None
    started: float | None = None  # the process's create time (pid reuse guard)

    def to_json(self) -> dict:
        return {"rank": self.rank, "pid": self.pid, "exit_code": self.exit_code}


@dataclass
class Failure:
    rank: int | None
    exit_code: int | None
    message: str
    oom: bool = False
    node: str | None = None  # a Slurm run: the node the rank ran on

    def to_json(self) -> dict:
        data = {"rank": self.rank, "exit_code": self.exit_code, "message": self.message,
                "oom": self.oom}
        if self.node is not None:
            data["node"] = self.node
        return data


@dataclass
class RunStatus:
    """What ``status.json`` holds. ``to_json()`` is the ``trainwiz runs --json`` record."""

    id: str
    state: RunState = RunState.STARTING
    profile: str | None = None
    script: str | None = None
    args: list[str] = field(default_factory=list)
    started_at: str | None = None
    ended_at: str | None = None
    run_dir: str = ""
    supervisor_pid: int | None = None
    supervisor_started: float | None = None
    launcher_pid: int | None = None
    launcher_exit_code: int | None = None
    device: str = "cuda"
    gpu_ids: list[int] | None = None
    num_processes: int | None = None
    num_machines: int = 1
    machine_rank: int = 0
    port: int | None = None
    simulate: str | None = None
    ranks: list[RankStatus] = field(default_factory=list)
    failure: Failure | None = None
    message: str | None = None  # a note: why stopped, supervisor lost, disk full, damaged ...
    scheduler: str | None = None  # "slurm": a Slurm job (trainwiz.launchers.slurm_jobs)
    slurm: dict | None = None  # its job id, Slurm's state and reason, the node list

    def __post_init__(self) -> None:
        self.state = RunState(self.state)

    @property
    def finished(self) -> bool:
        return self.state.terminal

    @property
    def damaged(self) -> bool:
        return self.state is RunState.DAMAGED

    def to_json(self) -> dict:
        return {
            "id": self.id, "state": str(self.state), "profile": self.profile,
            "script": self.script, "started_at": self.started_at, "ended_at": self.ended_at,
            "run_dir": self.run_dir, "supervisor_pid": self.supervisor_pid,
            "ranks": [r.to_json() for r in self.ranks],
            "failure": self.failure.to_json() if self.failure else None,
            **({"scheduler": self.scheduler, "slurm": self.slurm, "message": self.message}
               if self.scheduler else {}),
        }

    def to_file(self) -> dict:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_file(cls, data) -> RunStatus:
        return status_from_file(data)


# ---- checking data against the types above ----------------------------------------------

def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in tp)
    if is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _matches(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return value in {m.value for m in tp}
    if is_dataclass(tp):
        return isinstance(value, dict)
    return True  # a type this checker does not know: not checked


@functools.cache
def _fields_of(cls):
    return typing.get_type_hints(cls), fields(cls)


def _build(cls, data, where: str):
    """An instance of dataclass ``cls`` from ``data``, every known field type-checked; unknown
    keys (written by a newer trainwiz) are ignored."""
    if not isinstance(data, dict):
        raise DamagedStatus(f"{where}: expected a mapping, got {_json_type(data)}")
    hints, specs = _fields_of(cls)
    kwargs = {}
    for f in specs:
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:  # required
                raise DamagedStatus(f"{where}: field '{f.name}' is missing")
            continue
        value, tp = data[f.name], hints[f.name]
        if not _matches(value, tp):
            raise DamagedStatus(f"{where}: field '{f.name}' must be {_type_name(tp)}, "
                                f"got {_json_type(value)}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def status_from_file(data, where: str = "status.json") -> RunStatus:
    """A RunStatus from the parsed JSON of ``status.json``; DamagedStatus naming the field when
    the data is not one."""
    if not isinstance(data, dict):
        raise DamagedStatus(f"{where}: expected a mapping, got {_json_type(data)}")
    data = dict(data)
    ranks = data.pop("ranks", [])
    failure = data.pop("failure", None)
    if not isinstance(ranks, list):
        raise DamagedStatus(f"{where}: field 'ranks' must be a list, got {_json_type(ranks)}")
    status = _build(RunStatus, data, where)
    status.ranks = [_build(RankStatus, r, f"{where}: ranks[{i}]") for i, r in enumerate(ranks)]
    status.failure = _build(Failure, failure, f"{where}: failure") if failure is not None else None
    return status


# ---- memory samples ------------------------------------------------------------------------

class _Readable:
    """``record.get("name")`` as well as ``record.name``: readers written against the JSON
    lines keep working."""

    def get(self, key: str, default=None):
        return getattr(self, key, default)

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


@dataclass(frozen=True)
class GpuReading(_Readable):
    index: int
    name: str | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    temperature: float | None = None
    power_draw: float | None = None
    power_limit: float | None = None


@dataclass(frozen=True)
class RankReading(_Readable):
    rank: int
    pid: int | None = None
    rss: int | None = None  # resident host memory, bytes


@dataclass(frozen=True)
class Sample(_Readable):
    """One line of ``samples.jsonl``: GPU memory (NVML, or a simulated box) and each rank's host
    memory at time ``t`` (Unix seconds). Values not measured are None."""

    t: float
    gpus: tuple[GpuReading, ...] = ()
    ranks: tuple[RankReading, ...] = ()

    def to_json(self) -> dict:
        return {"t": self.t, "gpus": [asdict(g) for g in self.gpus],
                "ranks": [asdict(r) for r in self.ranks]}

    @classmethod
    def from_json(cls, data) -> Sample | None:
        """The sample a JSON line holds, or None when it is not one (a torn or forged line)."""
        try:
            if not isinstance(data, dict) or not _matches(data.get("t"), float):
                return None
            gpus = tuple(_build(GpuReading, g, "gpu") for g in data.get("gpus") or [])
            ranks = tuple(_build(RankReading, r, "rank") for r in data.get("ranks") or [])
        except (DamagedStatus, TypeError):
            return None
        return cls(t=float(data["t"]), gpus=gpus, ranks=ranks)
