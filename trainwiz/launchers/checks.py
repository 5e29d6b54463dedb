"""The checks before a launch, in order: the script and its interpreter, the GPUs the ranks see,
CPU cores, host and GPU memory against the estimate, the rendezvous port.

    preflight(profile, script, args, *, module=False, simulate=None, yes=False, confirm=None)
        -> Preflight       raises TrainwizError (exit 2) naming what to fix; starts nothing
    check_fit(profile, gpus, nproc, yes, confirm, host=None) -> notes   (also used for Slurm)
    resolve_script_and_python(profile, script, args, module=False, cwd=None)
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from trainwiz.errors import NeedsConfirmation, TrainwizError
from trainwiz.estimator.catalog import model_from_params, resolve_model
from trainwiz.estimator.fit import estimate
from trainwiz.hardware import detect, visible_gpus
from trainwiz.launchers import command as C
from trainwiz.profiles import check_profile_gpus, estimate_request
from trainwiz.profiles.estimator_inputs import model_argument
from trainwiz.units import format_bytes

_CHECK = (
    "import importlib.util, json, sys\n"
    "mods = sys.argv[1:]\n"
    "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in mods}))\n"
)


@dataclass
class Preflight:
    script: str
    args: list[str]
    nproc: int
    port: int | None  # None: a Slurm job chooses it when it starts, on a node not known yet
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


PROBE_TIMEOUT_S = 20.0
PROBE_MAX_BYTES = 64 * 1024


def _probe(exe: str, modules: list[str], where: str) -> dict[str, bool]:
    """Run the interpreter once to ask which modules it has: in its own process group, with a
    timeout and a bound on what it may print, so a broken or hostile ``python:`` costs at most
    PROBE_TIMEOUT_S and PROBE_MAX_BYTES and leaves no process behind."""
    try:
        proc = subprocess.Popen([exe, "-c", _CHECK, *modules], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError as exc:
        raise TrainwizError(f"{where}: could not run {exe!r} ({exc.strerror})") from None
    out = bytearray()
    problem = None
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = f"it did not answer within {PROBE_TIMEOUT_S:.0f} s"
                    break
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
                if len(out) > PROBE_MAX_BYTES:
                    problem = f"it printed more than {PROBE_MAX_BYTES // 1024} KiB"
                    break
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its whole group: children it started too
        except OSError:
            pass
        proc.stdout.close()
        proc.wait()
    if problem is None and proc.returncode not in (0, -signal.SIGKILL):
        problem = f"it exited with code {proc.returncode}"
    if problem is None:
        lines = out.decode("utf-8", "replace").strip().splitlines()
        try:
            found = json.loads(lines[-1]) if lines else None
        except ValueError:
            found = None
        if isinstance(found, dict) and all(isinstance(found.get(m), bool) for m in modules):
            return {m: found[m] for m in modules}
        problem = "it did not answer like a Python interpreter"
    raise TrainwizError(f"{where}: {exe!r} is not a usable Python interpreter ({problem}); set "
                        "python: to the training environment's interpreter")


def _check_interpreter(profile, modules: list[str]) -> tuple[str, dict[str, bool]]:
    python = C.interpreter(profile)
    exe = python if os.sep in python else shutil.which(python)
    where = f"profile '{profile.name}': key 'python'"
    if not exe or not os.access(exe, os.X_OK) or not os.path.isfile(exe):
        raise TrainwizError(f"{where}: interpreter {python!r} not found; set python: to the "
                            "training environment's interpreter (e.g. /path/to/venv/bin/python)")
    return exe, _probe(exe, modules, where)


def _check_cores(profile, nproc: int) -> list[str]:
    """A warning when a CPU profile starts more ranks than this process may use cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    if profile.device == "cpu" and cores and nproc > cores:
        return [f"warning: {nproc} CPU ranks but {cores} CPU cores usable here: the ranks will "
                f"take turns on the cores (slow); lower num_processes to at most {cores}"]
    return []


def _host_over(est_host: int | None, what: str, *,
               host: tuple[int | None, str] | None = None) -> str | None:
    """What is wrong when the estimate needs more host memory than this machine has (or
    ``host``: (bytes, which machine), e.g. a Slurm partition's node), saying what it compared;
    None when it fits or nothing is known."""
    total, machine = host if host is not None else (None, "this machine")
    if not est_host:
        return None
    if host is None:
        total = host_memory()
    if total and est_host > total:
        return (f"about {format_bytes(est_host)} of host memory needed ({what}) but {machine} "
                f"has {format_bytes(total)} of RAM")
    return None


def host_memory() -> int | None:
    """This machine's RAM in bytes (what CPU ranks and loading the weights share)."""
    return psutil.virtual_memory().total or None


def cpu_ranks_need(peak_per_rank: int, nproc: int) -> int:
    """Host memory CPU ranks need: each holds its own tensors (the estimate's peak per rank;
    no CUDA context, no allocator cache), the same figure preflight and the wizard compare."""
    return nproc * peak_per_rank


def _over(msg: str, yes: bool | None, confirm) -> list[str]:
    """A plan that needs more memory than there is: a warning when only reporting (``yes``
    None) or told to go on, else the user confirms or nothing starts (never "checks passed")."""
    if yes is None:  # only reporting (--print-commands): nothing is launched
        return [f"warning: {msg}"]
    if yes:
        return [f"warning: {msg} (launching anyway: --yes)"]
    if confirm is not None and confirm(f"{msg}. Launch anyway?"):
        return [f"warning: {msg} (launching anyway)"]
    raise NeedsConfirmation(f"{msg}; free memory, change the profile, or pass --yes to launch "
                            "anyway")


def check_fit(profile, gpus, nproc: int, yes: bool, confirm, *,
              host: tuple[int | None, str] | None = None) -> list[str]:
    req = estimate_request(profile, nproc)
    if req is None:
        return []
    model_str, config = req
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
    if profile.device == "cpu":  # the ranks' tensors live in host memory
        msg = _host_over(cpu_ranks_need(est.per_gpu.peak_allocated, nproc),
                         f"{nproc} CPU rank(s) × {format_bytes(est.per_gpu.peak_allocated)} "
                         "(the estimate's peak per rank)", host=host)
        return _over(msg, yes, confirm) if msg else []
    msg = _host_over(est.host_ram, "the estimate's host RAM (loading the weights, CPU offload)",
                     host=host)
    # a warning, not a question: loading is a passing peak (mmap, swap); the GPUs are judged next
    notes = [f"warning: {msg}"] if msg else []
    need = est.per_gpu.total
    if not frees:
        return notes
    free, gpu = min(frees)
    if need <= free:
        return notes + [f"memory check: {format_bytes(need)} per GPU estimated, "
                        f"{format_bytes(free)} free on the fullest GPU"]
    msg = (f"the estimate for {model_str} needs {format_bytes(need)} per GPU but GPU {gpu} has "
           f"only {format_bytes(free)} free now")
    return notes + _over(msg, yes, confirm)


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
    # an unknown {placeholder} is found before anything else is checked or started
    own = set(profile.script_args or []) if not script else set()
    source = getattr(profile, "source", None) or f"profile '{profile.name}'"
    for arg in args:
        C.expand_args([arg], profile, where=f"{source}: key 'script_args'" if arg in own
                      else "the command line")
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
        det = detect(simulate)
        gpus = tuple(det.gpus)
        check_profile_gpus(profile, len(gpus))
        inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
        if profile.gpu_ids is not None:
            by_index = {g.index: g for g in gpus}
            gpus = tuple(by_index[i] for i in profile.gpu_ids if i in by_index)
        elif inherited is not None and "CUDA_VISIBLE_DEVICES" not in profile.env:
            gpus = tuple(visible_gpus(gpus, inherited))
            if not gpus:
                raise TrainwizError(f"CUDA_VISIBLE_DEVICES={inherited!r} in this shell hides "
                                    f"every GPU; unset it or set gpu_ids in profile "
                                    f"'{profile.name}'")
    nproc = C.nproc_per_node(profile, len(gpus))
    notes += _check_cores(profile, nproc) + check_fit(profile, gpus, nproc, yes, confirm)

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
