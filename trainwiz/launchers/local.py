"""Start and stop runs on this machine: the run directory, the detached supervisor, stopping it.

    launch(profile, script, args, *, detach=True, module=False, simulate=None, yes=False,
           confirm=None, cwd=None, pre=None) -> RunHandle
    plan_commands(profile, pre, *, run_dir, run_id, module=False) -> [LaunchCommand]
    stop_run(run_id_or_dir, grace=10.0) -> RunStatus
    find_supervisor(run_id, pid=None, started=None) -> psutil.Process | None

Everything is checked (:mod:`trainwiz.launchers.checks`) before anything starts; a failed
check raises TrainwizError (exit 2) and leaves no run directory behind. Slurm runs go through
:mod:`trainwiz.launchers.slurm_submit` instead (:mod:`dispatch` chooses).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from trainwiz.atomic import is_disk_full, write_atomic
from trainwiz.errors import TrainwizError
from trainwiz.launchers import command as C
from trainwiz.launchers import slurm_jobs
from trainwiz.launchers.checks import Preflight, preflight
from trainwiz.launchers.command import BOOT, boot_argv
from trainwiz.launchers.proctree import SUPERVISOR_MARK, run_processes, terminate
from trainwiz.launchers.rundir import (
    RunState,
    RunStatus,
    create_run_dir,
    new_run_id,
    now_iso,
    owner_problem,
    read_status,
    resolve_run,
    runs_root,
    save_status,
    write_json_atomic,
)
from trainwiz.launchers.runinfo import plan_estimate, save_estimate
from trainwiz.profiles import to_accelerate_config
from trainwiz.profiles.validate import dump_yaml, profile_to_dict


@dataclass
class RunHandle:
    run_dir: Path
    id: str
    supervisor_pid: int | None = None
    notes: list[str] = field(default_factory=list)
    job_id: str | None = None  # a Slurm run: the job sbatch submitted


# ---- launch ----------------------------------------------------------------------------------

def profile_yaml(profile) -> str:
    return dump_yaml(profile_to_dict(profile))


def launch_accelerate_config(profile, nproc: int) -> dict:
    """The profile as an accelerate config, adjusted so several CPU ranks really start.

    accelerate's own MULTI_CPU path (``use_cpu: true``) runs one process unless MPI is set up,
    so a cpu profile goes through its torchrun path (``distributed_type: MULTI_GPU``,
    ``use_cpu: false``) and ``ACCELERATE_USE_CPU=true`` in the ranks' environment picks gloo.
    """
    cfg = to_accelerate_config(profile, nproc)
    if profile.device == "cpu" and nproc * int(profile.num_machines or 1) > 1:
        cfg["distributed_type"] = "MULTI_GPU"
        cfg["use_cpu"] = False
        cfg.pop("gpu_ids", None)
    return cfg


def plan_commands(profile, pre: Preflight, *, run_dir: str, run_id: str,
                  module: bool = False) -> list[C.LaunchCommand]:
    """The command for every machine of the profile (this machine's is ``[machine_rank]``)."""
    return C.build_all_nodes(profile, pre.script, pre.args, run_dir=run_dir, run_id=run_id,
                             port=pre.port, module=module, nproc=pre.nproc, python=pre.python)


def launch(profile, script: str | None = None, args: list[str] | None = None, *,
           detach: bool = True, module: bool = False, simulate: str | None = None,
           yes: bool = False, confirm: Callable[[str], bool] | None = None,
           cwd: str | os.PathLike | None = None, grace_s: float = 10.0,
           pre: Preflight | None = None) -> RunHandle:
    """Check, create the run directory, start the supervisor; return once it is up.

    ``detach`` is accepted for symmetry with the CLI: the run is always owned by a detached
    supervisor, and the caller decides whether to watch it (see :mod:`trainwiz.cli.live`).
    """
    import yaml

    cwd = str(Path(cwd or os.getcwd()).resolve())
    pre = pre or preflight(profile, script, args, module=module, simulate=simulate, yes=yes,
                           confirm=confirm, cwd=cwd)
    run_id = new_run_id()
    try:
        run_dir = create_run_dir(run_id)
    except OSError as exc:
        raise TrainwizError(_write_problem(exc, runs_root() / run_id, "the run directory"),
                            exit_code=1) from None
    try:
        cmd = C.build_command(profile, pre.script, pre.args, run_dir=str(run_dir), run_id=run_id,
                              port=pre.port, module=module, nproc=pre.nproc, python=pre.python,
                              rank_entry=C.rank_entry_path())
        write_atomic(run_dir / "profile.yaml", profile_yaml(profile), fsync=False)
        # the estimate it was launched with, kept for the comparison with what it measures
        save_estimate(run_dir, plan_estimate(profile, pre.nproc))
        if profile.launcher == "accelerate":
            cfg = launch_accelerate_config(profile, pre.nproc)
            write_atomic(run_dir / "accelerate_config.yaml", yaml.safe_dump(cfg, sort_keys=False),
                         fsync=False)
        status = RunStatus(
            id=run_id, state=RunState.STARTING, profile=profile.name,
            script=pre.script, args=C.expand_args(pre.args, profile, str(run_dir)),
            started_at=now_iso(), run_dir=str(run_dir),
            device=profile.device, gpu_ids=pre.gpu_indices, num_processes=pre.nproc,
            num_machines=int(profile.num_machines or 1), machine_rank=int(profile.machine_rank),
            port=pre.port, simulate=simulate,
        )
        save_status(run_dir, status)  # first: a listing never sees a run without status
        write_json_atomic(run_dir / "command.json", {
            "argv": cmd.argv, "env": cmd.env, "cwd": cwd, "grace_s": grace_s,
            "launcher": profile.launcher, "module": module, "notes": pre.notes,
        })
        env = dict(os.environ)
        env[SUPERVISOR_MARK] = run_id  # how `stop` recognises this run's supervisor
        with open(run_dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(boot_argv("supervisor", str(run_dir)), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    start_new_session=True, close_fds=True)
    except OSError as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise TrainwizError(_write_problem(exc, run_dir, "the run directory"),
                            exit_code=1) from None
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    _reap_later(proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = read_status(run_dir, check_alive=False)
        if st.supervisor_pid:
            break
        if proc.poll() is not None:
            raise TrainwizError(f"the supervisor exited at once (code {proc.returncode}); "
                                f"see {run_dir / 'supervisor.log'}", exit_code=1)
        time.sleep(0.05)
    return RunHandle(run_dir=run_dir, id=run_id, supervisor_pid=proc.pid, notes=list(pre.notes))


def _write_problem(exc: OSError, path: Path, what: str) -> str:
    where = exc.filename or path
    if is_disk_full(exc):
        return f"{where}: cannot write {what}: the disk is full; nothing was started"
    return f"{where}: cannot write {what}: {exc.strerror or exc}; nothing was started"


def _reap_later(proc: subprocess.Popen) -> None:
    """Collect the supervisor's exit status if this process outlives it (the app)."""
    threading.Thread(target=proc.wait, daemon=True, name="trainwiz-reap").start()


# ---- stop ------------------------------------------------------------------------------------

def find_supervisor(run_id: str, pid: int | None = None, started: float | None = None):
    """The live supervisor of run ``run_id``: a process of this user whose environment says it
    supervises that run (set when it was started) and, when ``pid``/``started`` are known, with
    that pid and start time. None if there is no such process. A pid named by a status file is
    never trusted by itself: it may be forged, or reused by the system for another process."""
    uid = os.getuid()
    supervisor_boot = BOOT.format(mod="supervisor")  # not its watchdog, not a Slurm node task

    def is_it(proc) -> bool:
        try:
            if proc.uids().real != uid or proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if started and abs(proc.create_time() - started) > 1:
                return False
            if proc.environ().get(SUPERVISOR_MARK) != run_id:
                return False
            cmd = proc.cmdline()  # [python, -c, boot, root, RUN_DIR]: the supervisor's boot
            return supervisor_boot in cmd and any(a.endswith(run_id) for a in cmd)
        except psutil.Error:
            return False

    if pid:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            proc = None
        if proc is not None and is_it(proc):
            return proc
    for proc in psutil.process_iter():
        if proc.pid != pid and is_it(proc):
            return proc
    return None


def stop_run(run: str | os.PathLike, grace: float = 10.0) -> RunStatus:
    """End a run: SIGTERM through its supervisor (launcher group, grace, SIGKILL), then make sure
    no process of the run is left even if the supervisor is gone. Returns the final status.

    Only this user's own processes that carry the run's id are ever signalled; a run directory
    of another user is refused. A damaged run (status.json unusable) is stopped by its id."""
    run_dir = resolve_run(run)
    problem = owner_problem(run_dir)
    if problem:
        raise TrainwizError(f"{run_dir}: not stopped: {problem}")
    if slurm_jobs.is_slurm_run(run_dir):  # scancel, and wait for Slurm to end the job
        if not read_status(run_dir).finished:
            slurm_jobs.stop_job(run_dir)
        return read_status(run_dir)
    status = read_status(run_dir, check_alive=False)
    if status.finished:
        return read_status(run_dir)
    run_id = run_dir.name
    if status.damaged:
        sup = find_supervisor(run_id)
        known = []
    else:
        sup = find_supervisor(run_id, status.supervisor_pid, status.supervisor_started)
        known = [status.launcher_pid] + [r.pid for r in status.ranks]
    if sup is not None:
        try:
            sup.terminate()
            sup.wait(timeout=grace + 15)
        except psutil.TimeoutExpired:
            pass
        except psutil.Error:
            pass
    left = run_processes(run_id, [p for p in known if p])
    if left:
        terminate(left, grace if sup is None else 2.0, first_signal_pgid=None)
    final = read_status(run_dir, check_alive=False)
    if not final.finished:
        final.state = RunState.STOPPED
        final.ended_at = now_iso()
        if sup is not None:
            final.message = "stopped by request (the supervisor did not answer)"
        elif left:
            final.message = "stopped by request (no supervisor of this run was running)"
        else:  # nothing ended: say so, never "stopped" as if something had been
            final.message = "nothing of this run was running; marked stopped"
        original = run_dir / "status.json"
        if status.damaged and original.is_file() and not original.is_symlink():
            # what the damaged file held is kept beside the new one, never overwritten
            kept = original.with_name("status.json.damaged")
            try:
                if not kept.exists():
                    shutil.copyfile(original, kept)
                final.message += f"; its damaged status.json was kept as {kept.name}"
            except OSError:
                pass
        elif final.damaged:
            final.message += "; its status.json was damaged and has been rewritten"
        try:
            save_status(run_dir, final)
        except OSError as exc:
            raise TrainwizError(f"{run_dir / 'status.json'}: the run was stopped but its status "
                                f"could not be written ({exc.strerror})", exit_code=1) from None
    return read_status(run_dir)
