"""One node of a Slurm run: the task ``srun`` starts on every node of the job.

``<trainwiz python> -c <boot> <trainwiz root> RUN_DIR -- LAUNCHER ARGV...`` (see the sbatch
script written by :mod:`trainwiz.launchers.slurm`). It makes the node's own folder
``RUN_DIR/nodes/<node name>-<run id>/``, points the launcher's log folder there (and, for
accelerate, sets the machine rank from ``SLURM_NODEID``), writes the node's ``command.json`` and
``status.json``, and runs trainwiz's supervisor in the foreground: the task lives as long as the
node's ranks, and ``scancel`` (SIGTERM to the task) runs the supervisor's stop protocol. The
exit code is the node's outcome (0: its ranks succeeded), so the job ends COMPLETED or FAILED
accordingly.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

from trainwiz.launchers import slurm as S
from trainwiz.launchers import slurm_jobs
from trainwiz.launchers.records import status_from_file
from trainwiz.launchers.rundir import RunStatus, now_iso, read_status, save_status, \
    write_json_atomic
from trainwiz.launchers.supervisor import Supervisor

# Seconds the node's supervisor waits between SIGTERM and SIGKILL when the job is cancelled:
# under Slurm's default KillWait (30 s), so the supervisor records the end before Slurm kills it.
NODE_GRACE_S = 5.0


# The launcher modules and their option for rendezvous settings.
_RDZV_CONF = {"torch.distributed.run": "--rdzv-conf", "accelerate.commands.launch": "--rdzv_conf"}


def node_argv(argv: list[str], node_dir: Path, node_id: int) -> list[str]:
    """The launcher's argv for this node: its own log folder, its machine rank (accelerate), and
    whether it hosts the c10d rendezvous (the job's first node does, ``is_host``: decided by the
    node's place in the job, not by matching host names, so it also holds when several Slurm
    nodes share one machine)."""
    out = list(argv)
    done: set[str] = set()  # the launcher's own options come first; the script's may reuse names
    for i, tok in enumerate(out[:-1]):
        if tok in S.LOG_DIR_OPTIONS and "log" not in done:
            out[i + 1] = str(node_dir / "torchrun")
            done.add("log")
        elif tok in S.MACHINE_RANK_OPTIONS and "rank" not in done:
            out[i + 1] = str(node_id)
            done.add("rank")
    for i, tok in enumerate(out[:-1]):
        if tok == "-m" and out[i + 1] in _RDZV_CONF:
            host = "true" if node_id == 0 else "false"
            out[i + 2:i + 2] = [_RDZV_CONF[out[i + 1]], f"is_host={host}"]
            break
    return out


def _register(run_dir: Path, launcher: list[str]) -> None:
    """Make the run known to `trainwiz runs` when the job was submitted without trainwiz."""
    job_id = os.environ.get("SLURM_JOB_ID", "")
    name = os.environ.get("SLURM_JOB_NAME", "")
    nnodes = int(os.environ.get("SLURM_JOB_NUM_NODES") or 1)
    nproc = None
    for opt in ("--nproc-per-node", "--num_processes"):
        if opt in launcher[:-1] and launcher[launcher.index(opt) + 1].isdigit():
            nproc = int(launcher[launcher.index(opt) + 1])
            if opt == "--num_processes":
                nproc //= max(1, nnodes)
    status = RunStatus(id=run_dir.name, state="starting",
                       profile=name[len("trainwiz-"):] if name.startswith("trainwiz-") else name,
                       started_at=now_iso(), run_dir=str(run_dir), num_processes=nproc,
                       num_machines=nnodes, scheduler="slurm",
                       device="cpu" if os.environ.get("CUDA_VISIBLE_DEVICES") == "" else "cuda")
    # every node may get here at once: each write is atomic and says the same
    save_status(run_dir, status)
    write_json_atomic(run_dir / slurm_jobs.JOB_FILE, {
        "job_id": job_id, "partition": os.environ.get("SLURM_JOB_PARTITION"), "nodes": [],
        "submitted_at": None, "script": None})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--":
        print("usage: slurm_node RUN_DIR -- LAUNCHER ARGV...", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    launcher = argv[2:]
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    node_id = int(os.environ.get("SLURM_NODEID") or 0)
    # nodes/<node>-<run id>: the folder's name is its status's id, which also marks the node's
    # processes (TRAINWIZ_RUN_ID): unique, so runs sharing a machine never touch each other's
    node_dir = run_dir / slurm_jobs.NODES_DIR / f"{S.node_dir_name(node)}-{run_dir.name}"
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    logging.basicConfig(level=logging.INFO, filename=str(node_dir / "supervisor.log"),
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    if not (run_dir / "status.json").is_file():  # a script submitted by hand (profiles export)
        _register(run_dir, launcher)
    top = status_from_file(json.loads((run_dir / "status.json").read_text()))
    try:
        top_cmd = json.loads((run_dir / "command.json").read_text())
    except (OSError, ValueError):
        top_cmd = {}
    write_json_atomic(node_dir / "command.json", {
        "argv": node_argv(launcher, node_dir, node_id), "env": {},
        "cwd": top_cmd.get("cwd") or os.getcwd(), "grace_s": NODE_GRACE_S,
        "launcher": top_cmd.get("launcher"), "node": node, "node_id": node_id,
        "host": socket.gethostname(), "job_id": os.environ.get("SLURM_JOB_ID"),
    })
    status = RunStatus(
        id=node_dir.name, state="starting", profile=top.profile,
        script=top.script, args=list(top.args), started_at=now_iso(), run_dir=str(node_dir),
        device=top.device, num_processes=top.num_processes, num_machines=top.num_machines,
        machine_rank=node_id, simulate=top.simulate,
    )
    save_status(node_dir, status)
    sup = Supervisor(node_dir)
    try:
        sup.start()
    except Exception:
        logging.getLogger("trainwiz.slurm").exception("supervisor crashed on %s", node)
        raise
    final = read_status(node_dir, check_alive=False)
    if final.state == "succeeded":
        return 0
    if final.state == "stopped":
        return 143
    return 1
