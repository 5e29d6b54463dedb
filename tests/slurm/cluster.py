"""A real Slurm cluster on this machine, for the tests: munged, slurmctld and two slurmd.

Debian's ``slurm-wlm`` and ``munge`` packages (installed with apt-get when missing; that needs
root, as in CI). Two nodes on one host, the way the packaged slurmd allows:
``NodeName=node[1-2] NodeHostname=<this host> Port=[P-P+1]``, one ``slurmd -N nodeK`` each.
Partition ``debug`` (both nodes, the default) and ``closed`` (State=DOWN: it takes jobs and
never starts them, so they pend with reason ``PartitionDown``). Each node declares two GPUs of
type h100 (``Gres=gpu:h100:2``, backed by stand-in device files) so the partitions read as GPU
partitions do; the test jobs themselves are CPU jobs and request none.

Everything lives in one private folder (config, munge key and socket, state, spool, logs, pid
files) with free ports, so it never touches /etc/slurm or a cluster already on the machine. No
accounting daemon: ``AccountingStorageType=accounting_storage/none`` with
``JobCompType=jobcomp/filetxt``; trainwiz reads job states from ``scontrol`` (the controller keeps
finished jobs for ``MinJobAge``) and the node supervisors' status files.

Also runnable by hand: ``python -m tests.slurm.cluster start DIR`` / ``stop DIR``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
NEEDED = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun", "slurmctld", "slurmd",
          "munged")


class ClusterError(RuntimeError):
    pass


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)


def missing_tools() -> list[str]:
    return [n for n in NEEDED if _which(n) is None]


def install() -> None:
    """apt-get update + install slurm-wlm and munge (root only), unless already there."""
    if not missing_tools():
        return
    if os.geteuid() != 0:
        raise ClusterError(f"Slurm is not installed ({', '.join(missing_tools())} missing) and "
                           "installing it needs root: apt-get install slurm-wlm munge")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        out = subprocess.run(argv, env=env, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=600)
        if out.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed ({out.returncode}):\n"
                               + (out.stdout + out.stderr)[-3000:])
    if missing_tools():
        raise ClusterError(f"still missing after apt-get install: {', '.join(missing_tools())}")


def _free_ports(n: int) -> int:
    """A port p such that p .. p+n-1 are free now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65000:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise ClusterError("no free ports")


def slurm_conf(base: Path, host: str, ctld_port: int, node_port: int) -> str:
    return f"""\
# trainwiz test cluster: two nodes on one host ({host})
ClusterName=trainwiz-test
GresTypes=gpu
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={base}/munge.sock
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool/%n
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd-%n.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={base}/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=60
NodeName=node[1-2] NodeHostname={host} NodeAddr=127.0.0.1 Port=[{node_port}-{node_port + 1}] CPUs=2 RealMemory=2000 Gres=gpu:h100:2 State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
PartitionName=closed Nodes=node[1-2] MaxTime=INFINITE State=DOWN
"""


def gres_conf(base: Path) -> str:
    # Two "H100s" per node: stand-in device files (the null device's numbers), so slurmd
    # reports the generic resource as a GPU node's would; sinfo shows gpu:h100:2.
    return f"NodeName=node[1-2] Name=gpu Type=h100 File={base}/fakegpu[0-1]\n"


def _run(argv, env, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start(base: Path) -> dict[str, str]:
    """Start munged, slurmctld and both slurmd under ``base``; the environment to use it."""
    install()
    base = Path(base)
    for sub in ("state", "spool", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    key = base / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    host = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    conf.write_text(slurm_conf(base, host, _free_ports(1), _free_ports(2)))
    for i in range(2):
        dev = base / f"fakegpu{i}"
        if not dev.exists():
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (base / "gres.conf").write_text(gres_conf(base))
    env = dict(os.environ, SLURM_CONF=str(conf))
    out = _run([_which("munged"), "--force", f"--socket={base}/munge.sock", f"--key-file={key}",
                f"--log-file={base}/log/munged.log", f"--pid-file={base}/munged.pid",
                f"--seed-file={base}/munged.seed"], env)
    if out.returncode != 0:
        raise ClusterError(f"munged failed: {out.stderr.strip()}")
    steps = [[_which("slurmctld"), "-f", str(conf), "-i"]] + [
        [_which("slurmd"), "-f", str(conf), "-N", node] for node in ("node1", "node2")]
    for argv in steps:
        out = _run(argv, env)
        if out.returncode != 0:
            stop(base)
            raise ClusterError(f"{' '.join(argv)} failed: {(out.stderr or out.stdout).strip()}")
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        out = _run(["sinfo", "-h", "-N", "-p", "debug", "-o", "%N %T"], env)
        last = out.stdout.strip() + out.stderr.strip()
        states = [line.split()[1] for line in out.stdout.splitlines() if len(line.split()) == 2]
        if out.returncode == 0 and len(states) == 2 and all(s == "idle" for s in states):
            return {"SLURM_CONF": str(conf)}
        time.sleep(0.3)
    logs = "".join((base / "log" / f).read_text()[-1500:] for f in
                   ("slurmctld.log", "slurmd-node1.log") if (base / "log" / f).exists())
    stop(base)
    raise ClusterError(f"the test cluster did not come up: sinfo says {last!r}\n{logs}")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(base: Path) -> None:
    """Cancel every job, stop the daemons (by their pid files), wait for them to exit."""
    base = Path(base)
    conf = base / "slurm.conf"
    env = dict(os.environ, SLURM_CONF=str(conf))
    if conf.exists() and _which("scancel"):
        try:
            _run([_which("scancel"), "--user", str(os.getuid())], env, timeout=15)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                out = _run([_which("squeue"), "-h", "-o", "%i"], env, timeout=10)
                if out.returncode != 0 or not out.stdout.strip():
                    break
                time.sleep(0.3)
        except subprocess.TimeoutExpired:
            pass
    pids = [p for p in (_pid(base / "slurmd-node1.pid"), _pid(base / "slurmd-node2.pid"),
                        _pid(base / "slurmctld.pid"), _pid(base / "munged.pid")) if p]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (our own child) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    what, where = sys.argv[1], Path(sys.argv[2])
    if what == "start":
        print(f"export SLURM_CONF={start(where)['SLURM_CONF']}")
    else:
        stop(where)
