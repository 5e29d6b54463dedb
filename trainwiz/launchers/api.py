"""Launch, stop and find runs: the API the CLI and the app use.

    launch(profile, script, args, *, detach=True, module=False, simulate=None, yes=False,
           confirm=None, cwd=None) -> RunHandle
    preflight(profile, script, *, module=False, simulate=None, yes=False, confirm=None) -> Preflight
    stop_run(run_id_or_dir, grace=10.0) -> RunStatus
    list_runs() / read_status(run_dir) / read_samples(run_dir) / tail_log(run_dir, rank, n)

Everything is checked before anything starts; a failed check raises TrainwizError (exit 2) and
leaves no run directory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from trainwiz.errors import TrainwizError
from trainwiz.launchers import command as C
from trainwiz.launchers import slurm_jobs, slurm_submit
from trainwiz.launchers.rundir import (
    RunStatus,
    create_run_dir,
    new_run_id,
    now_iso,
    read_status,
    resolve_run,
    save_status,
    write_json_atomic,
)

_CHECK = (
    "import importlib.util, json, sys\n"
    "mods = sys.argv[1:]\n"
    "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in mods}))\n"
)


@dataclass
class RunHandle:
    run_dir: Path
    id: str
    supervisor_pid: int | None = None
    notes: list[str] = field(default_factory=list)
    job_id: str | None = None  # a Slurm run: the job sbatch submitted


@dataclass
class Preflight:
    script: str
    args: list[str]
    nproc: int
    port: int
    gpu_count: int
    notes: list[str] = field(default_factory=list)
    python: str | None = None  # the interpreter, resolved to a path
    gpu_indices: list[int] | None = None  # NVML indices of the GPUs the ranks see, in order


# ---- checks ---------------------------------------------------------------------------------

def port_free(port: int, host: str = "") -> bool:
    """Whether a listening socket could bind ``port`` now (as torch's TCPStore would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _check_interpreter(profile, modules: list[str]) -> tuple[str, dict[str, bool]]:
    python = C.interpreter(profile)
    exe = python if os.sep in python else shutil.which(python)
    where = f"profile '{profile.name}': key 'python'"
    if not exe or not os.access(exe, os.X_OK):
        raise TrainwizError(f"{where}: interpreter {python!r} not found; set python: to the "
                            "training environment's interpreter (e.g. /path/to/venv/bin/python)")
    try:
        out = subprocess.run([exe, "-c", _CHECK, *modules], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
        found = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        raise TrainwizError(f"{where}: could not run {exe!r} ({exc})") from None
    return exe, found


def _check_fit(profile, gpus, nproc: int, yes: bool, confirm) -> list[str]:
    try:
        from trainwiz.profiles import estimate_request
        from trainwiz.profiles.estimate_io import model_argument

        req = estimate_request(profile, nproc)
        if req is None:
            return []
        model_str, config = req
        from trainwiz.estimator import estimate, model_from_params, resolve_model

        name, params = model_argument(model_str)
        try:
            model = model_from_params(params) if params is not None else resolve_model(name)
        except TrainwizError as exc:  # say which file and key hold the bad model
            where = getattr(profile, "source", None) or f"profile '{profile.name}'"
            raise TrainwizError(f"{where}: key 'estimate.model': {exc}") from None
        selected = list(gpus)[:nproc] or list(gpus)
        totals = [g.memory_total for g in selected if g.memory_total]
        frees = [(g.memory_free if g.memory_free is not None else g.memory_total, g.index)
                 for g in selected if g.memory_total]
        est = estimate(model, config, gpu_memory=min(totals) if totals else None,
                       gpu_free=min(frees)[0] if frees else None, suggestions=False)
    except TrainwizError:
        raise
    except (ImportError, AttributeError) as exc:  # estimator not available in this build
        return [f"memory check skipped: {exc}"]
    need = est.per_gpu.total
    if not frees:
        return []
    free, gpu = min(frees)
    gib = 1024 ** 3
    if need <= free:
        return [f"memory check: {need / gib:.1f} GiB per GPU estimated, "
                f"{free / gib:.1f} GiB free on the fullest GPU"]
    msg = (f"the estimate for {model_str} needs {need / gib:.1f} GiB per GPU but GPU {gpu} has "
           f"only {free / gib:.1f} GiB free now")
    if yes is None:  # only reporting (--print-commands): nothing is launched
        return [f"warning: {msg}"]
    if yes:
        return [f"warning: {msg} (launching anyway: --yes)"]
    if confirm is not None and confirm(f"{msg}. Launch anyway?"):
        return [f"warning: {msg} (launching anyway)"]
    raise TrainwizError(f"{msg}; free memory, change the profile, or pass --yes to launch anyway")


def resolve_script_and_python(profile, script: str | None = None,
                              args: list[str] | None = None, *, module: bool = False,
                              cwd: str | os.PathLike | None = None,
                              ) -> tuple[str, list[str], str, list[str]]:
    """The training script (absolute path, or the module) and its arguments, and the ranks'
    interpreter (a path, with torch, and accelerate when the profile launches with it).
    Returns (script, args, interpreter, notes); raises TrainwizError naming what to fix."""
    cwd = Path(cwd or os.getcwd())
    notes: list[str] = []
    if not script:  # the profile's script, its arguments, then the command line's
        script = profile.script
        args = list(profile.script_args or []) + list(args or [])
    args = list(args or [])
    if not script:
        raise TrainwizError("no training script: give SCRIPT (or -m MODULE), or set 'script' in "
                            f"profile '{profile.name}'")
    if not module:
        path = Path(script).expanduser()
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise TrainwizError(f"{script}: no such training script")
        script = str(path.resolve())

    needed = ["torch"]
    if profile.launcher == "accelerate":
        needed.append("accelerate")
    if module:
        needed.append(script)
    exe, found = _check_interpreter(profile, needed)
    python = C.interpreter(profile)
    if not found.get("torch") and profile.python is None and os.path.realpath(exe) != os.path.realpath(sys.executable):
        # No interpreter named and `python3` on PATH has no torch (a venv not activated): the
        # environment trainwiz itself runs in is the next best guess, when it has torch.
        own, own_found = _check_interpreter(replace(profile, python=sys.executable), needed)
        if own_found.get("torch"):
            notes.append(f"python3 on PATH ({exe}) has no torch; using trainwiz's own "
                         f"interpreter {own} (set python: in the profile to choose)")
            exe, found, python = own, own_found, own
    if not found.get("torch"):
        raise TrainwizError(f"profile '{profile.name}': interpreter {python!r} has no torch; "
                            "set python: to the training environment's interpreter")
    if profile.launcher == "accelerate" and not found.get("accelerate"):
        raise TrainwizError(f"profile '{profile.name}': launcher is accelerate but {python!r} "
                            "has no accelerate package (pip install accelerate, or use "
                            "launcher: torchrun)")
    if module and not found.get(script):
        raise TrainwizError(f"{script}: no such module for {python!r}")
    return script, args, exe, notes


def preflight(profile, script: str | None = None, args: list[str] | None = None, *,
              module: bool = False, simulate: str | None = None, yes: bool = False,
              confirm: Callable[[str], bool] | None = None, cwd: str | os.PathLike | None = None,
              ) -> Preflight:
    """Every check a launch needs, in order; raises TrainwizError naming what to fix."""
    script, args, exe, notes = resolve_script_and_python(profile, script, args, module=module,
                                                         cwd=cwd)

    gpus: tuple = ()
    if profile.device == "cuda":
        from trainwiz.hardware import detect

        det = detect(simulate)
        gpus = tuple(det.gpus)
        from trainwiz.profiles import check_profile_gpus

        check_profile_gpus(profile, len(gpus))
        inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
        if profile.gpu_ids is not None:
            by_index = {g.index: g for g in gpus}
            gpus = tuple(by_index[i] for i in profile.gpu_ids if i in by_index)
        elif inherited is not None and "CUDA_VISIBLE_DEVICES" not in profile.env:
            from trainwiz.hardware import visible_gpus

            gpus = tuple(visible_gpus(gpus, inherited))
            if not gpus:
                raise TrainwizError(f"CUDA_VISIBLE_DEVICES={inherited!r} in this shell hides "
                                    f"every GPU; unset it or set gpu_ids in profile "
                                    f"'{profile.name}'")
    nproc = C.nproc_per_node(profile, len(gpus))
    if profile.device == "cuda":
        notes += _check_fit(profile, gpus, nproc, yes, confirm)

    multi = int(profile.num_machines or 1) > 1
    port = profile.main_port
    if multi and (port is None or not profile.main_address):
        raise TrainwizError(f"profile '{profile.name}': a {profile.num_machines}-machine profile "
                            "needs main_address and main_port (machine 0's address and a port "
                            "every machine can reach)")
    if not multi or profile.machine_rank == 0:
        if port is None:
            port = free_port()
        elif not port_free(port):
            if multi:
                raise TrainwizError(f"profile '{profile.name}': key 'main_port': port {port} is "
                                    "already in use on this machine; the other machines expect "
                                    "it, so free it or change main_port everywhere")
            new = free_port()
            notes.append(f"port {port} is in use; using free port {new}")
            port = new
    return Preflight(script=script, args=list(args), nproc=nproc, port=int(port),
                     gpu_count=len(gpus), notes=notes, python=exe,
                     gpu_indices=[g.index for g in gpus] if profile.device == "cuda" else None)


# ---- launch ----------------------------------------------------------------------------------

def _profile_yaml(profile) -> str:
    try:
        from trainwiz.profiles.validate import dump_yaml, profile_to_dict

        return dump_yaml(profile_to_dict(profile))
    except ImportError:
        import dataclasses

        import yaml

        return yaml.safe_dump(dataclasses.asdict(profile), sort_keys=False)


def _accelerate_config(profile, nproc: int) -> dict:
    """The profile as an accelerate config, adjusted so several CPU ranks really start.

    accelerate's own MULTI_CPU path (``use_cpu: true``) runs one process unless MPI is set up,
    so a cpu profile goes through its torchrun path (``distributed_type: MULTI_GPU``,
    ``use_cpu: false``) and ``ACCELERATE_USE_CPU=true`` in the ranks' environment picks gloo.
    """
    try:
        from trainwiz.profiles import to_accelerate_config

        cfg = to_accelerate_config(profile, nproc)
    except ImportError:
        cfg = C.accelerate_config_fallback(profile, nproc)
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
    supervisor, and the caller decides whether to watch it (see :mod:`trainwiz.launchers.live`).
    """
    import yaml

    if profile.scheduler == "slurm":  # sbatch, not a local supervisor
        return slurm_submit.submit(profile, script, args, module=module, yes=yes,
                                   confirm=confirm, cwd=cwd)
    cwd = str(Path(cwd or os.getcwd()).resolve())
    pre = pre or preflight(profile, script, args, module=module, simulate=simulate, yes=yes,
                           confirm=confirm, cwd=cwd)
    run_id = new_run_id()
    run_dir = create_run_dir(run_id)
    try:
        cmd = C.build_command(profile, pre.script, pre.args, run_dir=str(run_dir), run_id=run_id,
                              port=pre.port, module=module, nproc=pre.nproc, python=pre.python)
        (run_dir / "profile.yaml").write_text(_profile_yaml(profile))
        if profile.launcher == "accelerate":
            cfg = _accelerate_config(profile, pre.nproc)
            (run_dir / "accelerate_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        write_json_atomic(run_dir / "command.json", {
            "argv": cmd.argv, "env": cmd.env, "cwd": cwd, "grace_s": grace_s,
            "launcher": profile.launcher, "module": module, "notes": pre.notes,
        })
        status = RunStatus(
            id=run_id, state="starting", profile=profile.name,
            script=pre.script, args=pre.args, started_at=now_iso(), run_dir=str(run_dir),
            device=profile.device, gpu_ids=pre.gpu_indices, num_processes=pre.nproc,
            num_machines=int(profile.num_machines or 1), machine_rank=int(profile.machine_rank),
            port=pre.port, simulate=simulate,
        )
        save_status(run_dir, status)
        from trainwiz.launchers.supervisor import boot_argv

        with open(run_dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(boot_argv("supervisor", str(run_dir)), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    start_new_session=True, close_fds=True)
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


def _reap_later(proc: subprocess.Popen) -> None:
    """Collect the supervisor's exit status if this process outlives it (the app)."""
    import threading

    threading.Thread(target=proc.wait, daemon=True, name="trainwiz-reap").start()


# ---- stop ------------------------------------------------------------------------------------

def stop_run(run: str | os.PathLike, grace: float = 10.0) -> RunStatus:
    """End a run: SIGTERM through its supervisor (launcher group, grace, SIGKILL), then make sure
    no process of the run is left even if the supervisor is gone. Returns the final status."""
    import psutil

    from trainwiz.launchers.supervisor import run_processes, terminate

    run_dir = resolve_run(run)
    if slurm_jobs.is_slurm_run(run_dir):  # scancel, and wait for Slurm to end the job
        status = read_status(run_dir)
        return status if status.finished else slurm_jobs.stop_job(run_dir)
    status = read_status(run_dir, check_alive=False)
    if status.finished:
        return read_status(run_dir)
    sup = None
    if status.supervisor_pid:
        try:
            sup = psutil.Process(status.supervisor_pid)
            if status.supervisor_started and abs(sup.create_time() - status.supervisor_started) > 1:
                sup = None
        except psutil.Error:
            sup = None
    if sup is not None:
        try:
            sup.terminate()
            sup.wait(timeout=grace + 15)
        except psutil.TimeoutExpired:
            pass
        except psutil.Error:
            pass
    left = run_processes(status.id, [status.launcher_pid] + [r.pid for r in status.ranks])
    if left:
        terminate(left, grace if sup is None else 2.0, first_signal_pgid=None)
    final = read_status(run_dir, check_alive=False)
    if not final.finished:
        final.state = "stopped"
        final.ended_at = now_iso()
        final.message = "stopped by request (the supervisor did not answer)"
        save_status(run_dir, final)
    return read_status(run_dir)
