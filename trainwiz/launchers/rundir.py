"""Run directories and the run store: where a run's files live and how to read them.

Layout of ``$XDG_STATE_HOME/trainwiz/runs/<id>/`` (mode 0700)::

    profile.yaml            the profile as launched (frozen copy)
    command.json            {"argv": [...], "env": {changed vars}, "cwd", "nodes": [...]}
    accelerate_config.yaml  (accelerate launcher only) the profile exported for accelerate
    status.json             RunStatus, rewritten atomically by the supervisor
    samples.jsonl           GPU memory samples, one JSON object a line, bounded
    supervisor.log          the supervisor's own log
    launcher.log            torchrun / accelerate stdout+stderr (the agent's messages)
    torchrun/<id>_*/attempt_N/<local_rank>/{stdout,stderr}.log, error.json   (torch's layout)

Reading needs no torch and no running supervisor: any process of the user can list, read and
follow runs. Pure file handling only (psutil is used to tell whether a supervisor is alive).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from trainwiz.errors import TrainwizError
from trainwiz.launchers import slurm_jobs

STATES = ("starting", "running", "succeeded", "failed", "stopped")
TERMINAL = ("succeeded", "failed", "stopped")
MAX_SAMPLES = 2000


def runs_root() -> Path:
    """``platformdirs.user_state_dir("trainwiz")/runs`` (honours ``XDG_STATE_HOME``)."""
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg:
        base = Path(xdg) / "trainwiz"
    else:
        import platformdirs

        base = Path(platformdirs.user_state_dir("trainwiz"))
    return base / "runs"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(profile_name: str | None = None) -> str:
    """``YYYYmmdd-HHMMSS-xxxx``: sorts by start time, unique enough to type a prefix of."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def create_run_dir(run_id: str) -> Path:
    root = runs_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root / run_id
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_json_atomic(path: Path | str, data) -> None:
    """Write ``data`` as JSON so a reader sees the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    state: str = "starting"
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
    message: str | None = None  # a note: why stopped, supervisor lost, ...
    scheduler: str | None = None  # "slurm": a Slurm job (see slurm_jobs)
    slurm: dict | None = None  # job id, Slurm's state and reason, node list

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict:
        return {
            "id": self.id, "state": self.state, "profile": self.profile, "script": self.script,
            "started_at": self.started_at, "ended_at": self.ended_at, "run_dir": self.run_dir,
            "supervisor_pid": self.supervisor_pid,
            "ranks": [r.to_json() for r in self.ranks],
            "failure": self.failure.to_json() if self.failure else None,
            **({"scheduler": self.scheduler, "slurm": self.slurm, "message": self.message}
               if self.scheduler else {}),
        }

    def to_file(self) -> dict:
        data = asdict(self)
        return data

    @classmethod
    def from_file(cls, data: dict) -> RunStatus:
        data = dict(data)
        ranks = [RankStatus(**{k: v for k, v in r.items() if k in RankStatus.__dataclass_fields__})
                 for r in data.pop("ranks", []) or []]
        fail = data.pop("failure", None)
        failure = Failure(**{k: v for k, v in fail.items() if k in Failure.__dataclass_fields__}) \
            if fail else None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, ranks=ranks, failure=failure)


def save_status(run_dir: Path | str, status: RunStatus) -> None:
    write_json_atomic(Path(run_dir) / "status.json", status.to_file())


def _supervisor_alive(status: RunStatus) -> bool:
    if not status.supervisor_pid:
        return False
    import psutil

    try:
        proc = psutil.Process(status.supervisor_pid)
        if status.supervisor_started and abs(proc.create_time() - status.supervisor_started) > 1:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def read_status(run_dir: Path | str, *, check_alive: bool = True) -> RunStatus:
    """The run's status. A run whose supervisor vanished without finishing reads as failed."""
    run_dir = Path(run_dir)
    if slurm_jobs.is_slurm_run(run_dir):
        return slurm_jobs.read_job_status(run_dir)
    path = run_dir / "status.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrainwizError(f"{run_dir}: not a trainwiz run (no status.json)") from None
    except (OSError, ValueError) as exc:
        raise TrainwizError(f"{path}: unreadable ({exc})") from None
    status = RunStatus.from_file(data)
    status.run_dir = str(run_dir)
    if check_alive and not status.finished and status.supervisor_pid and not _supervisor_alive(status):
        # Re-read once: the supervisor may have written its last status and exited just now.
        try:
            status2 = RunStatus.from_file(json.loads(path.read_text()))
            status2.run_dir = str(run_dir)
            status = status2
        except (OSError, ValueError):
            pass
        if not status.finished:
            status.state = "failed"
            status.message = "the supervisor process is gone (killed?); its ranks were ended"
            if status.failure is None:
                status.failure = Failure(rank=None, exit_code=None,
                                         message="supervisor exited unexpectedly", oom=False)
    return status


def list_runs() -> list[RunStatus]:
    """Every run of this user, newest first."""
    root = runs_root()
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        if not (entry / "status.json").is_file():
            continue
        try:
            out.append(read_status(entry))
        except TrainwizError:
            continue
    out.sort(key=lambda s: (s.started_at or "", s.id), reverse=True)
    return out


def resolve_run(ref: str | os.PathLike) -> Path:
    """A run directory from an id, a unique id prefix, ``last``, or a path."""
    ref = str(ref)
    path = Path(ref)
    if os.sep in ref and (path / "status.json").is_file():
        return path
    root = runs_root()
    if ref == "last":
        runs = list_runs()
        if not runs:
            raise TrainwizError(f"no runs yet (looked in {root})")
        return Path(runs[0].run_dir)
    if (root / ref / "status.json").is_file():
        return root / ref
    matches = sorted(p for p in root.glob(f"{glob.escape(ref)}*") if (p / "status.json").is_file()) \
        if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TrainwizError(f"no run {ref!r} (see `trainwiz runs`; runs live in {root})")
    names = ", ".join(p.name for p in matches[:5])
    raise TrainwizError(f"run {ref!r} is ambiguous: {names}{' ...' if len(matches) > 5 else ''}")


# ---- samples ------------------------------------------------------------------------------

def append_sample(run_dir: Path | str, sample: dict, max_samples: int = MAX_SAMPLES) -> None:
    """Append one sample; when the file holds twice the bound, keep the newest ``max_samples``."""
    path = Path(run_dir) / "samples.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps(sample, separators=(",", ":")) + "\n")
    try:
        size = path.stat().st_size
    except OSError:
        return
    # Cheap check first: only count lines when the file could be over the bound.
    if size < max_samples * 2 * 20:  # samples are 100+ bytes; count lines only near the bound
        return
    lines = path.read_text().splitlines()
    if len(lines) <= 2 * max_samples:
        return
    fd, tmp = tempfile.mkstemp(prefix=".samples.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines[-max_samples:]) + "\n")
    os.replace(tmp, path)


def read_samples(run_dir: Path | str, last: int | None = None) -> list[dict]:
    """GPU memory samples, oldest first: ``{"t", "gpus": [{"index", "memory_used",
    "memory_total"}], "ranks": [{"rank", "pid", "rss"}]}``; a Slurm run's GPUs and ranks also
    name their ``node``."""
    if slurm_jobs.is_slurm_run(run_dir):
        return slurm_jobs.read_samples(run_dir, last=last)
    path = Path(run_dir) / "samples.jsonl"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    if last:
        lines = lines[-last:]
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written right now
            continue
    return out


# ---- logs ----------------------------------------------------------------------------------

def rank_log_dir(run_dir: Path | str, local_rank: int) -> Path | None:
    """The newest attempt's folder for ``local_rank`` (torch's layout), or None before it exists."""
    pattern = str(Path(run_dir) / "torchrun" / "*" / "attempt_*" / str(local_rank))
    found = [Path(p) for p in glob.glob(pattern)]
    if not found:
        return None

    def attempt(p: Path) -> tuple[float, int]:
        try:
            n = int(p.parent.name.split("_", 1)[1])
        except (IndexError, ValueError):
            n = 0
        return (p.parent.parent.stat().st_mtime, n)

    return max(found, key=attempt)


def local_rank_of(run_dir: Path | str, rank: int) -> int:
    try:
        status = read_status(run_dir, check_alive=False)
    except TrainwizError:
        return rank
    for r in status.ranks:
        if r.rank == rank and r.local_rank is not None:
            return r.local_rank
    nproc = status.num_processes or 0
    if status.num_machines > 1 and nproc and rank >= nproc:
        return rank - status.machine_rank * nproc
    return rank


def rank_log_paths(run_dir: Path | str, rank: int) -> tuple[Path | None, Path | None]:
    if slurm_jobs.is_slurm_run(run_dir):
        return slurm_jobs.rank_log_paths(run_dir, rank)
    folder = rank_log_dir(run_dir, local_rank_of(run_dir, rank))
    if folder is None:
        return None, None
    return folder / "stdout.log", folder / "stderr.log"


def _tail_lines(path: Path | None, n: int) -> list[str]:
    if path is None or not path.is_file():
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max(4096, n * 400)))
        data = fh.read().decode("utf-8", "replace")
    return data.splitlines()[-n:] if n else []


def tail_log(run_dir: Path | str, rank: int = 0, n: int = 50, stream: str = "both") -> list[str]:
    """The last ``n`` lines of a rank's stdout, stderr, or both (stdout's, then stderr's)."""
    out_path, err_path = rank_log_paths(run_dir, rank)
    if stream == "stdout":
        return _tail_lines(out_path, n)
    if stream == "stderr":
        return _tail_lines(err_path, n)
    return _tail_lines(out_path, n) + _tail_lines(err_path, n)
