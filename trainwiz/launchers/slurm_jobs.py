"""Slurm runs as runs: submit the job, read its state, stop it, find each node's files.

A Slurm run's directory holds what a local run's does at the top (``profile.yaml``,
``command.json``, ``status.json``), plus ``job.sbatch`` (the script), ``slurm.json`` (job id,
partition, the last state Slurm reported) and ``slurm-<job id>.out`` (the batch script's output),
and one folder per node, ``nodes/<node name>-<run id>/``, that is a complete supervisor run
directory (status, launcher log, ``torchrun/`` rank logs, GPU samples) written by that node's
supervisor.

The job's state comes from Slurm: ``scontrol show job`` while the controller remembers the job
(``MinJobAge``, 300 s after it ends by default), then ``sacct`` where the cluster keeps accounting
(slurmdbd). Without accounting (``AccountingStorageType=accounting_storage/none``) a finished job
the controller has forgotten is read from the last state trainwiz saw (kept in ``slurm.json``
every time a run is read) and the node supervisors' status files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from trainwiz.atomic import write_json_atomic
from trainwiz.hardware.slurm import SlurmError, SlurmMissing, run_slurm
from trainwiz.launchers.records import (
    Failure,
    GpuReading,
    RankReading,
    RunState,
    RunStatus,
    Sample,
)

JOB_FILE = "slurm.json"
NODES_DIR = "nodes"

# Slurm job states (squeue/scontrol/sacct spelling) -> the run's state.
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
          "RESV_DEL_HOLD")
TO_RUN_STATE = {"PENDING": "starting", "CONFIGURING": "starting", "REQUEUED": "starting",
                "REQUEUE_HOLD": "starting", "REQUEUE_FED": "starting",
                "RESV_DEL_HOLD": "starting", "COMPLETED": "succeeded", "CANCELLED": "stopped"}
FAILED_STATES = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
                 "PREEMPTED", "SPECIAL_EXIT", "REVOKED")


def is_slurm_run(run_dir: Path | str) -> bool:
    return (Path(run_dir) / JOB_FILE).is_file()


@dataclass
class JobInfo:
    job_id: str
    state: str  # RUNNING, PENDING, COMPLETED, ...
    reason: str | None = None  # why pending (PartitionDown, Resources, Priority, ...)
    nodelist: str | None = None  # Slurm's compressed form: node[1-2]
    exit_code: str | None = None  # "0:0" (code:signal)
    source: str = "scontrol"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_json(self) -> dict:
        return {"state": self.state, "reason": self.reason, "nodelist": self.nodelist,
                "exit_code": self.exit_code, "source": self.source}


def _base_state(text: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``."""
    return (text or "").split()[0].upper() if (text or "").split() else ""


def _none(text: str | None) -> str | None:
    return None if text in (None, "", "(null)", "None", "N/A") else text


def parse_scontrol_job(text: str) -> JobInfo | None:
    """``scontrol show job -o ID``: one line of Key=Value pairs."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if "JobId=" not in line:
        return None
    fields: dict[str, str] = {}
    for word in line.split():
        if "=" in word:
            k, v = word.split("=", 1)
            fields.setdefault(k, v)
    return JobInfo(job_id=fields.get("JobId", ""), state=_base_state(fields.get("JobState", "")),
                   reason=_none(fields.get("Reason")), nodelist=_none(fields.get("NodeList")),
                   exit_code=_none(fields.get("ExitCode")), source="scontrol")


def parse_sacct(text: str, job_id: str) -> JobInfo | None:
    """``sacct -j ID -X -n -P -o JobID,State,ExitCode,NodeList,Reason``."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 5 and parts[0] == job_id:
            return JobInfo(job_id=job_id, state=_base_state(parts[1]), exit_code=_none(parts[2]),
                           nodelist=_none(parts[3]), reason=_none(parts[4]), source="sacct")
    return None


def query_job(job_id: str) -> JobInfo | None:
    """What Slurm knows of the job now; None when it has forgotten it and keeps no accounting."""
    try:
        info = parse_scontrol_job(run_slurm(["scontrol", "show", "job", "-o", str(job_id)]))
        if info is not None:
            return info
    except SlurmMissing:
        raise
    except SlurmError as exc:
        if "Invalid job id" not in str(exc):
            raise
    try:
        return parse_sacct(run_slurm(["sacct", "-j", str(job_id), "-X", "-n", "-P", "-o",
                                      "JobID,State,ExitCode,NodeList,Reason"]), str(job_id))
    except SlurmError:  # accounting storage disabled / no slurmdbd
        return None


def expand_nodelist(nodelist: str | None) -> list[str]:
    if not nodelist:
        return []
    try:
        return run_slurm(["scontrol", "show", "hostnames", nodelist]).split()
    except SlurmError:
        return [nodelist]


# ---- the run's files ---------------------------------------------------------------------

def read_job_file(run_dir: Path | str) -> dict:
    try:
        return json.loads((Path(run_dir) / JOB_FILE).read_text())
    except (OSError, ValueError):
        return {}


def node_dirs(run_dir: Path | str) -> list[Path]:
    """Each node's folder, in node order (``SLURM_NODEID``), then by name."""
    root = Path(run_dir) / NODES_DIR
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if (d / "status.json").is_file():
            try:
                nid = int(json.loads((d / "command.json").read_text()).get("node_id", 0))
            except (OSError, ValueError, TypeError):
                nid = 0
            found.append((nid, d.name, d))
    return [d for _, _, d in sorted(found)]


def _node_name(node_dir: Path) -> str:
    try:
        return str(json.loads((node_dir / "command.json").read_text()).get("node") or node_dir.name)
    except (OSError, ValueError):
        return node_dir.name


def node_name(node_dir: Path) -> str:
    """The Slurm node a node folder belongs to."""
    return _node_name(node_dir)


# ---- the run's status ----------------------------------------------------------------------

def job_info(run_dir: Path | str, *, refresh: bool = True) -> JobInfo | None:
    """The job's state: Slurm's when it can be asked, else the last one trainwiz saw."""
    run_dir = Path(run_dir)
    job = read_job_file(run_dir)
    last = job.get("last") or None
    cached = JobInfo(job_id=str(job.get("job_id")), **last) if last else None
    if not refresh or (cached is not None and not cached.active) or not job.get("job_id"):
        return cached
    try:
        info = query_job(str(job["job_id"]))
    except (SlurmMissing, SlurmError):
        return cached
    if info is None:
        return cached
    if cached is None or info.to_json() != cached.to_json():
        job["last"] = info.to_json()
        if info.nodelist and not job.get("nodes"):
            job["nodes"] = expand_nodelist(info.nodelist)
        try:
            write_json_atomic(run_dir / JOB_FILE, job)
        except OSError:
            pass
    return info


def _first_failure(nodes: list[tuple[str, RunStatus]]) -> tuple[str, Failure] | None:
    """The node failure to report: a rank's own error before a peer's, the earliest first."""
    found = [(node, st) for node, st in nodes if st.failure is not None]
    if not found:
        return None

    def key(item):
        node, st = item
        f = st.failure
        signalled = f.exit_code is not None and (f.exit_code < 0 or f.exit_code > 128)
        peer = "closed" in (f.message or "").lower() or "connection" in (f.message or "").lower()
        return (f.rank is None, signalled, peer, st.ended_at or "~", node)

    node, st = min(found, key=key)
    return node, st.failure


def job_status(run_dir: Path | str, status: RunStatus, nodes: list[tuple[str, RunStatus]], *,
               refresh: bool = True) -> RunStatus:
    """A Slurm run's status from its own ``status`` (as written at submission) and its nodes'
    (node name, status): Slurm's job state, every node's ranks, the first failure and its node.
    The run directory's files are read by :mod:`rundir`; this asks Slurm and puts it together."""
    run_dir = Path(run_dir)
    job = read_job_file(run_dir)
    info = job_info(run_dir, refresh=refresh)
    job = read_job_file(run_dir)
    ranks = []
    for _, st in nodes:
        ranks += st.ranks
    status.ranks = sorted(ranks, key=lambda r: r.rank)
    status.supervisor_pid = None  # one per node, on the nodes
    slurm = {"job_id": str(job.get("job_id")), "state": info.state if info else "unknown",
             "reason": info.reason if info else None,
             "nodelist": info.nodelist if info else None,
             "nodes": list(job.get("nodes") or [n for n, _ in nodes]),
             "exit_code": info.exit_code if info else None,
             "partition": job.get("partition")}
    status.scheduler = "slurm"
    status.slurm = slurm
    first = _first_failure(nodes)
    if info is not None:
        if info.state in ACTIVE:
            status.state = RunState(TO_RUN_STATE.get(info.state, "running"))
            if info.state == "PENDING":
                status.message = f"pending in Slurm: {info.reason or 'no reason given'}"
        elif info.state in FAILED_STATES:
            status.state = RunState.FAILED
        else:
            status.state = RunState(TO_RUN_STATE.get(info.state, "failed"))
    else:
        # Slurm has forgotten the job and keeps no accounting: the nodes tell.
        states = {st.state for _, st in nodes}
        if nodes and all(st.finished for _, st in nodes):
            status.state = RunState("failed" if "failed" in states else
                                      "stopped" if "stopped" in states else "succeeded")
        elif nodes:
            status.state = RunState.FAILED
            status.message = (f"Slurm no longer knows job {job.get('job_id')} (no accounting) "
                              "and a node never recorded its end")
        else:
            status.state = RunState.FAILED
            status.message = (f"Slurm no longer knows job {job.get('job_id')} (no accounting) "
                              "and no node started")
    if status.finished:
        ends = [st.ended_at for _, st in nodes if st.ended_at]
        status.ended_at = max(ends) if ends else status.ended_at
    if first is not None and status.state in ("failed", "running", "starting"):
        node, f = first
        status.failure = Failure(rank=f.rank, exit_code=f.exit_code, message=f.message,
                                   oom=f.oom or (info is not None and
                                                 info.state == "OUT_OF_MEMORY"), node=node)
        if status.state != "failed" and f.rank is not None:
            status.message = f"rank {f.rank} on {node} failed; the job is ending"
    elif status.state == "failed" and info is not None:
        why = {"TIMEOUT": "the job reached its time limit (slurm.time)",
               "OUT_OF_MEMORY": "Slurm ended the job: out of memory",
               "NODE_FAIL": "a node of the job failed",
               "PREEMPTED": "the job was preempted"}.get(info.state,
                                                        f"Slurm ended the job: {info.state}")
        code = None
        if info.exit_code and info.exit_code.split(":")[0].isdigit():
            code = int(info.exit_code.split(":")[0])
        if info.state == "FAILED" and not nodes:  # the batch script failed before any node ran
            said = _batch_error(run_dir, job.get("job_id"))
            if said:
                why = f"the batch script failed: {said}"
        status.failure = Failure(rank=None, exit_code=code, message=why,
                                 oom=info.state == "OUT_OF_MEMORY")
    elif status.state == "stopped":
        status.message = status.message or f"job {job.get('job_id')} cancelled (scancel)"
    return status


def _batch_error(run_dir: Path, job_id) -> str | None:
    """The last error line of the batch script's output (``slurm-<job id>.out``), if any."""
    path = run_dir / f"slurm-{job_id}.out"
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 16384))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    lines = [ln.strip() for ln in lines if ln.strip()]
    # the cause comes first (execve: no such file, command not found); srun's summary of which
    # task exited with which code comes after it
    causes = [ln for ln in lines if ("error" in ln.lower() or "not found" in ln
                                     or "No such file" in ln)
              and "Exited with exit code" not in ln and "Terminating" not in ln]
    if causes:
        return causes[0]
    return lines[-1] if lines else None


# ---- stop --------------------------------------------------------------------------------

def stop_job(run_dir: Path | str, timeout: float = 120.0) -> None:
    """``scancel`` the job, then wait until Slurm no longer lists it (not even COMPLETING)."""
    run_dir = Path(run_dir)
    job = read_job_file(run_dir)
    job_id = str(job.get("job_id"))
    run_slurm(["scancel", job_id])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = job_info(run_dir)
        if info is None or not info.active:
            # squeue lists a job until its processes are gone (COMPLETING); wait for that too
            try:
                left = run_slurm(["squeue", "-h", "-j", job_id, "-o", "%T"]).strip()
            except SlurmError:
                left = ""
            if not left:
                return
        time.sleep(0.5)


# ---- logs and samples ------------------------------------------------------------------------

def launcher_logs(run_dir: Path | str) -> list[Path]:
    """The batch script's output, then each node's launcher log."""
    run_dir = Path(run_dir)
    out = sorted(run_dir.glob("slurm-*.out"))
    for d in node_dirs(run_dir):
        out += [d / "launcher.log", d / "supervisor.log"]
    return out


@dataclass(frozen=True)
class NodeGpuReading(GpuReading):
    """A GPU of a Slurm run: ``index`` is unique over the job, ``local_index`` the node's own."""

    node: str | None = None
    local_index: int | None = None


@dataclass(frozen=True)
class NodeRankReading(RankReading):
    node: str | None = None


def merge_samples(per_node: list[tuple[str, list[Sample]]]) -> list[Sample]:
    """Every node's samples merged round by round (the nodes sample at the same pace; the
    newest of each node make the newest merged sample), oldest first. Each GPU and rank names
    its ``node``; GPUs get an ``index`` unique over the job (node 0's first, then node 1's...)
    and keep the node's own as ``local_index``. ``per_node``: (node name, its samples), in node
    order."""
    with_base = []
    offset = 0
    for node, samples in per_node:
        indices = {g.index for s in samples for g in s.gpus}
        with_base.append((node, offset, samples))
        offset += (max(indices) + 1) if indices else 0
    rounds = max((len(s) for _, _, s in with_base), default=0)
    out = []
    for k in range(rounds):
        t = 0.0
        gpus: list[GpuReading] = []
        ranks: list[RankReading] = []
        for node, base, samples in with_base:
            j = len(samples) - rounds + k
            if j < 0:
                continue
            s = samples[j]
            t = max(t, s.t)
            gpus += [NodeGpuReading(**{**asdict(g), "index": base + g.index}, node=node,
                                    local_index=g.index) for g in s.gpus]
            ranks += [NodeRankReading(**asdict(r), node=node) for r in s.ranks]
        ranks.sort(key=lambda r: r.rank)
        out.append(Sample(t=t, gpus=tuple(gpus), ranks=tuple(ranks)))
    return out
