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
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from trainwiz.atomic import is_disk_full, write_atomic, write_json_atomic
from trainwiz.errors import TrainwizError
from trainwiz.launchers import slurm_jobs
from trainwiz.launchers.proctree import run_in_use
from trainwiz.launchers.records import (
    TERMINAL,
    DamagedStatus,
    Failure,
    RankStatus,
    RunState,
    RunStatus,
    Sample,
    status_from_file,
)

__all__ = ["TERMINAL", "Failure", "RankStatus", "RunState", "RunStatus", "Sample",
           "write_json_atomic", "is_disk_full"]

STATES = tuple(s.value for s in RunState)
MAX_SAMPLES = 2000
MAX_STATUS_BYTES = 1024 * 1024  # a status is a few KiB; a bigger file is not one


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


def save_status(run_dir: Path | str, status: RunStatus) -> None:
    """Write ``status.json`` atomically (OSError, e.g. a full disk, leaves the old file)."""
    write_atomic(Path(run_dir) / "status.json", json.dumps(status.to_file(), indent=1) + "\n",
                 fsync=False)


def owner_problem(run_dir: Path | str) -> str | None:
    """Why this user must not act on ``run_dir`` (owned by another user), or None."""
    try:
        uid = os.stat(run_dir).st_uid
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if uid != os.getuid():
        return f"owned by another user (uid {uid}); trainwiz only acts on your own runs"
    return None


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


def damaged_status(run_dir: Path, why: str) -> RunStatus:
    """The record of a run whose ``status.json`` cannot be used: listed, stoppable, readable."""
    return RunStatus(id=run_dir.name, state=RunState.DAMAGED, run_dir=str(run_dir),
                     message=why)


def _load_status(run_dir: Path) -> RunStatus:
    path = run_dir / "status.json"
    if not run_dir.is_dir():
        raise TrainwizError(f"{run_dir}: no such run folder (deleted or moved?)")
    problem = owner_problem(run_dir)
    if problem:
        return damaged_status(run_dir, f"the run folder is {problem}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        raise TrainwizError(f"{run_dir}: not a trainwiz run (no status.json); `trainwiz runs "
                            "prune` deletes such a folder once no process carries its id") from None
    except OSError as exc:
        return damaged_status(run_dir, f"status.json cannot be read ({exc.strerror})")
    if len(raw) > MAX_STATUS_BYTES:
        return damaged_status(run_dir, f"status.json is larger than "
                                       f"{MAX_STATUS_BYTES // 1024} KiB")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return damaged_status(run_dir, f"status.json is not valid JSON ({exc})")
    try:
        status = status_from_file(data, "status.json")
    except DamagedStatus as exc:
        return damaged_status(run_dir, str(exc))
    if status.id != run_dir.name:
        return damaged_status(run_dir, f"status.json names run {status.id!r}, not "
                                       f"{run_dir.name!r}")
    status.run_dir = str(run_dir)
    return status


def read_status(run_dir: Path | str, *, check_alive: bool = True) -> RunStatus:
    """The run's status. A run whose supervisor vanished without finishing reads as failed; a
    ``status.json`` that is damaged (or forged, or another user's) reads as state DAMAGED with
    the reason in ``message``. TrainwizError only when ``run_dir`` is no run at all."""
    run_dir = Path(run_dir)
    if slurm_jobs.is_slurm_run(run_dir) and not owner_problem(run_dir):
        return _slurm_status(run_dir)  # Slurm's state, every node's ranks
    status = _load_status(run_dir)
    if check_alive and not status.finished and not status.damaged and status.supervisor_pid \
            and not _supervisor_alive(status):
        # Re-read once: the supervisor may have written its last status and exited just now.
        status = _load_status(run_dir)
        if not status.finished and not status.damaged:
            status.state = RunState.FAILED
            status.message = "the supervisor process is gone (killed?); its ranks were ended"
            if status.failure is None:
                status.failure = Failure(rank=None, exit_code=None,
                                         message="supervisor exited unexpectedly", oom=False)
    return status


def slurm_node_statuses(run_dir: Path | str) -> list[tuple[str, RunStatus]]:
    """A Slurm run's nodes: (node name, the node supervisor's status), in node order."""
    out = []
    for d in slurm_jobs.node_dirs(run_dir):
        try:
            st = _load_status(d)
        except TrainwizError:
            continue
        if not st.damaged:
            out.append((slurm_jobs.node_name(d), st))
    return out


def slurm_node_of_rank(run_dir: Path | str, rank: int) -> Path | None:
    """The node folder of a Slurm run where global ``rank`` ran."""
    for _, st in slurm_node_statuses(run_dir):
        if any(r.rank == rank for r in st.ranks):
            return Path(st.run_dir)
    return None


def _slurm_status(run_dir: Path) -> RunStatus:
    status = _load_status(run_dir)
    if status.damaged:
        return status
    return slurm_jobs.job_status(run_dir, status, slurm_node_statuses(run_dir))


_CACHE: dict[str, tuple[tuple, RunStatus]] = {}


def _cached_status(run_dir: Path) -> RunStatus | None:
    """read_status, re-reading ``status.json`` only when it changed (a finished run's status
    never changes; the list of thousands of runs stays cheap to poll)."""
    try:
        st = os.stat(run_dir / "status.json")
    except FileNotFoundError:
        if (run_dir / "command.json").exists():  # created, status not written (killed, disk full)
            return damaged_status(run_dir, "no status.json")
        return None
    except OSError as exc:
        return damaged_status(run_dir, f"the run folder cannot be read ({exc.strerror})")
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _CACHE.get(str(run_dir))
    if hit is not None and hit[0] == key and (hit[1].finished or hit[1].damaged):
        return hit[1]
    try:
        status = read_status(run_dir)
    except TrainwizError as exc:
        return damaged_status(run_dir, str(exc))
    _CACHE[str(run_dir)] = (key, status)
    return status


def _run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root``, newest first (run ids sort by their start time)."""
    try:
        entries = [Path(e.path) for e in os.scandir(root)
                   if not e.name.startswith(".") and (e.is_dir(follow_symlinks=False) or (
                       # a Slurm run kept on a shared path (slurm.run_dir), linked from here
                       e.is_symlink() and slurm_jobs.is_slurm_run(e.path)))]
    except OSError:
        return []
    return sorted(entries, key=lambda p: p.name, reverse=True)


def list_runs(limit: int | None = None) -> list[RunStatus]:
    """Every run of this user (or the newest ``limit``), newest first. A run whose status
    cannot be used is one DAMAGED entry (never a failed list)."""
    root = runs_root()
    if not root.is_dir():
        return []
    out = []
    for entry in _run_dirs(root):
        status = _cached_status(entry)
        if status is not None:
            out.append(status)
            if limit is not None and len(out) >= limit:
                break
    return out


def count_runs() -> int:
    """How many run folders there are (without reading them)."""
    root = runs_root()
    return len(_run_dirs(root)) if root.is_dir() else 0


def resolve_run(ref: str | os.PathLike) -> Path:
    """A run directory from an id, a unique id prefix, ``last`` (the newest run directory,
    damaged or not), or a path."""
    ref = str(ref)
    path = Path(ref)
    if os.sep in ref:
        if path.is_dir() and ((path / "status.json").exists() or (path / "command.json").exists()):
            return path
        raise TrainwizError(f"{ref}: not a trainwiz run folder")
    root = runs_root()
    runs = _run_dirs(root) if root.is_dir() else []
    if ref == "last":
        if not runs:
            raise TrainwizError(f"no runs yet (looked in {root})")
        return runs[0]
    if os.sep not in ref and ref in {p.name for p in runs}:
        return root / ref
    matches = sorted(p for p in runs if p.name.startswith(ref)) if os.sep not in ref else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TrainwizError(f"no run {ref!r} (see `trainwiz runs`; runs live in {root})")
    names = ", ".join(p.name for p in matches[:5])
    raise TrainwizError(f"run {ref!r} is ambiguous: {names}{' ...' if len(matches) > 5 else ''}")


def parse_age(text: str) -> float:
    """Seconds from ``30m``, ``12h``, ``7d``, ``2w`` (or plain seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    t = text.strip().lower()
    try:
        if t and t[-1] in units:
            value = float(t[:-1]) * units[t[-1]]
        else:
            value = float(t)
    except ValueError:
        value = -1
    if not (0 <= value < 1e10):
        raise TrainwizError(f"--older-than {text!r}: expected an age such as 30m, 12h, 7d or 2w")
    return value


DAMAGED_QUIET_S = 60  # a damaged run folder unchanged this long, with no process, is over


def _last_change(run_dir: Path | str) -> float | None:
    """When the run folder or a file directly in it last changed (epoch seconds), or None."""
    try:
        times = [os.stat(run_dir).st_mtime]
        times += [e.stat(follow_symlinks=False).st_mtime for e in os.scandir(run_dir)]
    except OSError:
        return None
    return max(times)


def _damaged_is_over(run: RunStatus, now: float) -> bool:
    """A damaged run (status.json missing or unusable) counts as finished when no process of
    this user carries its id (ranks, launcher, supervisor), it is not a Slurm job (whose
    processes are on other machines) and its folder has not changed for a minute (a launch
    writing it now)."""
    changed = _last_change(run.run_dir)
    return (changed is not None and now - changed > DAMAGED_QUIET_S
            and not Path(run.run_dir).is_symlink() and not slurm_jobs.is_slurm_run(run.run_dir)
            and not run_in_use(run.id))


def prune_runs(*, older_than: float | None = None, keep: int | None = None,
               dry_run: bool = False) -> tuple[list[RunStatus], list[RunStatus]]:
    """Delete finished runs that ended more than ``older_than`` seconds ago and/or all but the
    newest ``keep`` runs. A running or starting run is never touched; a damaged one (no usable
    status.json) only when it is over (:func:`_damaged_is_over`), its age being its folder's
    last change. A folder of another user is never touched. Returns (removed, skipped because
    still running, damaged and maybe in use, or not this user's)."""
    runs = list_runs()
    now = time.time()
    removed: list[RunStatus] = []
    skipped: list[RunStatus] = []
    for i, run in enumerate(runs):
        old = True
        if older_than is not None:
            ended = run.ended_at or run.started_at
            try:
                when = datetime.fromisoformat(ended).timestamp() if ended else None
            except ValueError:
                when = None
            if run.damaged:
                when = _last_change(run.run_dir)
            old = when is not None and now - when > older_than
        beyond = keep is None or i >= keep
        if not (old and beyond):
            continue
        if owner_problem(run.run_dir) or not (
                run.finished or run.damaged and _damaged_is_over(run, now)):
            skipped.append(run)
            continue
        if not dry_run:
            path = Path(run.run_dir)
            if path.is_symlink():  # a Slurm run kept on a shared path: its folder, the link
                shutil.rmtree(path.resolve(), ignore_errors=True)
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(run.run_dir, ignore_errors=True)
            _CACHE.pop(run.run_dir, None)
        removed.append(run)
    return removed, skipped


# ---- samples ------------------------------------------------------------------------------

def append_sample(run_dir: Path | str, sample: Sample | dict,
                  max_samples: int = MAX_SAMPLES) -> None:
    """Append one sample; when the file holds twice the bound, keep the newest ``max_samples``.
    OSError (a full disk) is the caller's to handle: the file keeps whole lines only."""
    path = Path(run_dir) / "samples.jsonl"
    data = sample.to_json() if isinstance(sample, Sample) else sample
    line = (json.dumps(data, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        n = os.write(fd, line)
        if n != len(line):  # a short write on a nearly full disk: never leave half a line
            os.ftruncate(fd, os.fstat(fd).st_size - n)
            raise OSError(28, "No space left on device (short write)", str(path))
    finally:
        os.close(fd)
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
    write_atomic(path, "\n".join(lines[-max_samples:]) + "\n", fsync=False)


def _tail_bytes(path: Path, max_bytes: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read(max_bytes)
    if size > max_bytes:  # the first line is cut: drop it
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return data


def read_samples(run_dir: Path | str, last: int | None = None) -> list[Sample]:
    """Memory samples (:class:`Sample`), oldest first; only the newest ``last`` when given
    (read from the end of the file). Lines that are not samples are skipped. A Slurm run's are
    every node's, merged (see :func:`slurm_jobs.merge_samples`)."""
    if slurm_jobs.is_slurm_run(run_dir):
        return slurm_jobs.merge_samples([(slurm_jobs.node_name(d), read_samples(d, last=last))
                                         for d in slurm_jobs.node_dirs(run_dir)])
    path = Path(run_dir) / "samples.jsonl"
    try:
        if last:
            lines = _tail_bytes(path, last * 4096).splitlines()[-last:]
        else:
            lines = _tail_bytes(path, 64 * 1024 * 1024).splitlines()
    except (FileNotFoundError, IsADirectoryError):
        return []
    out = []
    for line in lines:
        try:
            sample = Sample.from_json(json.loads(line))
        except ValueError:  # a line being written right now
            continue
        if sample is not None:
            out.append(sample)
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
    if slurm_jobs.is_slurm_run(run_dir):  # the rank's node's folder
        node = slurm_node_of_rank(run_dir, rank)
        return rank_log_paths(node, rank) if node is not None else (None, None)
    folder = rank_log_dir(run_dir, local_rank_of(run_dir, rank))
    if folder is None:
        return None, None
    return folder / "stdout.log", folder / "stderr.log"


def rank_output_path(run_dir: Path | str, rank: int) -> Path | None:
    """The rank's stdout and stderr together, in the order written (``output.log``, kept by
    the rank's entry script), or None when the run has no such file (an older run)."""
    if slurm_jobs.is_slurm_run(run_dir):
        node = slurm_node_of_rank(run_dir, rank)
        return rank_output_path(node, rank) if node is not None else None
    folder = rank_log_dir(run_dir, local_rank_of(run_dir, rank))
    if folder is None or not (folder / "output.log").is_file():
        return None
    return folder / "output.log"


def tail_lines(path: Path | None, n: int) -> list[str]:
    """The last ``n`` lines of a file, read from its end (a huge log costs what ``n`` lines
    cost)."""
    if path is None or not n:
        return []
    chunk = max(8192, n * 400)
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = size
            data = b""
            while start > 0 and data.count(b"\n") <= n and len(data) < 64 * 1024 * 1024:
                step = min(chunk, start)
                start -= step
                fh.seek(start)
                data = fh.read(step) + data
                chunk *= 2
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


_tail_lines = tail_lines


def tail_log(run_dir: Path | str, rank: int = 0, n: int = 50, stream: str = "both") -> list[str]:
    """The last ``n`` lines of a rank's stdout, stderr, or both (in the order they were
    written; runs from before ``output.log`` existed: stdout's, then stderr's)."""
    out_path, err_path = rank_log_paths(run_dir, rank)
    if stream == "stdout":
        return tail_lines(out_path, n)
    if stream == "stderr":
        return tail_lines(err_path, n)
    both = rank_output_path(run_dir, rank)
    if both is not None:
        return tail_lines(both, n)
    return tail_lines(out_path, n) + tail_lines(err_path, n)
