"""Submit a ``scheduler: slurm`` profile: check, write the run directory and script, ``sbatch``.

Checks first (sbatch on PATH, the script, the ranks' interpreter, the partition's GPUs for the
memory estimate), then the run directory and its files, then ``sbatch --parsable``. If sbatch
refuses (unknown partition, bad account, a time over the limit), its own message is the error
and the run directory is removed: nothing half-created stays behind.

Where runs go: the runs folder (``$XDG_STATE_HOME/trainwiz/runs``, by default
``~/.local/state/trainwiz/runs``: under your home, which clusters share between nodes), or the
profile's ``slurm.run_dir`` (a link in the runs folder points there, so ``trainwiz runs`` finds
it). Every node of the job writes into it, so it must be on a shared filesystem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from trainwiz.errors import TrainwizError
from trainwiz.hardware.slurm import (
    SlurmError,
    SlurmMissing,
    find_partition,
    partition_plan,
    partitions,
    slurm_message,
    slurm_tool,
)
from trainwiz.hardware.types import GpuInfo
from trainwiz.launchers.local import RunHandle, launch_accelerate_config, profile_yaml
from trainwiz.launchers.checks import Preflight, check_fit, resolve_script_and_python
from trainwiz.launchers import slurm as S
from trainwiz.launchers import slurm_jobs as J
from trainwiz.launchers.rundir import (
    RunStatus,
    new_run_id,
    now_iso,
    runs_root,
    save_status,
    write_json_atomic,
)


def trainwiz_root() -> str:
    """The folder holding the ``trainwiz`` package (put on the node supervisors' sys.path)."""
    return str(Path(__file__).resolve().parent.parent.parent)


def runs_folder(profile) -> tuple[Path, bool]:
    """Where this profile's run directories go, and whether it is the default runs folder."""
    chosen = profile.slurm.run_dir if profile.slurm is not None else None
    if chosen:
        return Path(os.path.expandvars(os.path.expanduser(chosen))).resolve(), False
    return runs_root(), True


def folder_note(folder: Path, default: bool) -> str:
    home = Path.home()
    where = "under your home" if folder.is_relative_to(home) else "NOT under your home"
    if default:
        return (f"run directories go to {folder} ({where}); every node of the job writes there, "
                "so it must be on a filesystem the nodes share (set slurm.run_dir to choose)")
    return (f"run directories go to {folder} (the profile's slurm.run_dir); it must be on a "
            "filesystem every node shares")


def _nproc_and_partition(profile) -> tuple[int, object | None, list[str]]:
    """Ranks per node and the partition (None when sinfo cannot say)."""
    notes: list[str] = []
    wanted = profile.slurm.partition if profile.slurm is not None else None
    part = None
    try:
        part = find_partition(wanted, partitions())
    except SlurmMissing:
        raise
    except SlurmError as exc:
        notes.append(f"sinfo: {exc}")
    nproc = profile.processes_per_machine
    if nproc is None:
        if profile.device == "cpu":
            nproc = 1
        elif part is not None and part.gpus_per_node:
            nproc = part.gpus_per_node
            notes.append(f"one rank per GPU: {nproc} GPUs per node in partition {part.name}")
        else:
            where = f"partition {part.name}" if part is not None else "the partition"
            raise TrainwizError(f"profile '{profile.name}': key 'num_processes': {where} reports "
                                "no GPUs per node (sinfo's gpu GRES); set num_processes (ranks "
                                "per node)")
    return int(nproc), part, notes


def _fit_notes(profile, part, nproc: int, yes, confirm) -> list[str]:
    """The memory estimate against the partition's nodes: their GPUs (from the GRES type; an
    allocated GPU is the job's alone) and their RAM (sinfo's, the smallest node)."""
    if part is None:
        return []
    mems = [n.memory for n in part.nodes if n.memory]
    host = (min(mems) if mems else None, f"a node of partition {part.name}")
    if profile.device != "cuda":
        return check_fit(profile, [], nproc, yes, confirm, host=host)
    plan = partition_plan(part)
    if not plan.gpu_memory:
        return [f"memory check skipped: Slurm says the GPUs are {plan.gpu_type or 'unknown'} "
                "but not how much memory they have"]
    gpus = [GpuInfo(index=i, name=plan.preset or str(plan.gpu_type), memory_total=plan.gpu_memory,
                    memory_free=plan.gpu_memory) for i in range(nproc)]
    return check_fit(profile, gpus, nproc, yes, confirm, host=host)


def sbatch_script(profile, script: str, args: list[str], *, run_dir: str, run_id: str,
                  python: str, nproc: int, module: bool = False,
                  runs_folder: str | None = None) -> str:
    acc = None
    if profile.launcher == "accelerate":
        import yaml

        every = replace(profile, scheduler="local", slurm=None, num_machines=profile.machines)
        acc = yaml.safe_dump(launch_accelerate_config(every, nproc), sort_keys=False)
    return S.build_sbatch_script(
        profile, script, args, run_dir=run_dir, run_id=run_id, python=python, nproc=nproc,
        gpus_per_node=nproc if profile.device == "cuda" else None,
        trainwiz_python=sys.executable, trainwiz_root=trainwiz_root(), module=module,
        runs_folder=runs_folder, accelerate_config=acc)


def plan_script(profile, script: str | None = None, args: list[str] | None = None, *,
                module: bool = False, cwd=None, check: bool = True) -> tuple[str, list[str]]:
    """The script ``trainwiz launch`` would submit (for --print-commands and export), with the
    run directory chosen when the job starts (``<runs folder>/slurm-$SLURM_JOB_ID``)."""
    if profile.scheduler != "slurm":
        raise TrainwizError(f"profile '{profile.name}': an sbatch script needs scheduler: slurm "
                            "(and a slurm: section with partition, nodes, time, ...)")
    if check:
        script, args, python, notes = resolve_script_and_python(profile, script, args,
                                                                    module=module, cwd=cwd)
    else:  # export: written as the profile says, checked when the job runs
        if not script:
            script, args = profile.script, list(profile.script_args or []) + list(args or [])
        if not script:
            raise TrainwizError(f"profile '{profile.name}' has no key 'script': set script: (the "
                                "training script the job runs) to export it as an sbatch script")
        if not module and not os.path.isabs(script):
            script = str(Path(cwd or os.getcwd(), script).resolve())
        args, python, notes = list(args or []), profile.python or "python3", []
    try:
        nproc, part, more = _nproc_and_partition(profile)
        notes += more
        if check:  # --print-commands: the estimate against the partition, reported only
            notes += _fit_notes(profile, part, nproc, None, None)
    except SlurmMissing as exc:
        nproc = profile.processes_per_machine
        if nproc is None:
            if profile.device != "cpu":
                raise TrainwizError(f"{exc}; set num_processes (ranks per node) to write the "
                                    "script without asking Slurm") from None
            nproc = 1
        notes.append(str(exc))
    folder, default = runs_folder(profile)
    notes.append(folder_note(folder, default))
    try:  # Slurm opens the job's output file there before the script runs
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise TrainwizError(f"cannot create the runs folder {folder}: {exc}") from None
    text = sbatch_script(profile, script, args, run_dir="", run_id="", python=python,
                         nproc=nproc, module=module, runs_folder=str(folder))
    return text, notes


def preflight(profile, script: str | None = None, args: list[str] | None = None, *,
              module: bool = False, yes: bool | None = False,
              confirm: Callable[[str], bool] | None = None, cwd=None) -> Preflight:
    """Every check before submitting: sbatch on PATH, the script and the ranks' interpreter,
    the partition (ranks per node, the memory estimate against its GPUs). ``port`` is None:
    the rendezvous port is chosen in the job (from the job id), on a node not known yet."""
    slurm_tool("sbatch")
    script, args, python, notes = resolve_script_and_python(profile, script, args,
                                                                module=module, cwd=cwd)
    nproc, part, more = _nproc_and_partition(profile)
    notes += more
    notes += _fit_notes(profile, part, nproc, yes, confirm)
    folder, default = runs_folder(profile)
    notes.append(folder_note(folder, default))
    plan = partition_plan(part) if part is not None else None
    return Preflight(script=script, args=list(args), nproc=nproc, port=None,
                         gpu_count=plan.gpus_per_node if plan else 0, notes=notes, python=python)


def submit(profile, script: str | None = None, args: list[str] | None = None, *,
           module: bool = False, yes: bool = False,
           confirm: Callable[[str], bool] | None = None, cwd=None,
           pre: Preflight | None = None) -> RunHandle:
    """Check (unless ``pre`` holds the checks), write the run directory, submit with sbatch;
    the handle of the new run."""
    sbatch = slurm_tool("sbatch")
    cwd = str(Path(cwd or os.getcwd()).resolve())
    pre = pre or preflight(profile, script, args, module=module, yes=yes, confirm=confirm,
                           cwd=cwd)
    script, args, python, nproc, notes = pre.script, pre.args, pre.python, pre.nproc, pre.notes
    part_name = profile.slurm.partition if profile.slurm is not None else None
    folder, default = runs_folder(profile)
    run_id = new_run_id()
    link = None
    job_id = None
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_dir = folder / run_id
        run_dir.mkdir(mode=0o700)
    except OSError as exc:
        raise TrainwizError(f"cannot create the run directory in {folder}: {exc}") from None
    try:
        if not default:
            root = runs_root()
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            link = root / run_id
            link.symlink_to(run_dir, target_is_directory=True)
        text = sbatch_script(profile, script, args, run_dir=str(run_dir), run_id=run_id,
                             python=python, nproc=nproc, module=module)
        (run_dir / "profile.yaml").write_text(profile_yaml(profile))
        (run_dir / S.SCRIPT_NAME).write_text(text)
        write_json_atomic(run_dir / "command.json", {
            "argv": [sbatch, "--parsable", str(run_dir / S.SCRIPT_NAME)], "env": {}, "cwd": cwd,
            "launcher": profile.launcher, "module": module, "notes": notes,
            "scheduler": "slurm"})
        save_status(run_dir, RunStatus(
            id=run_id, state="starting", profile=profile.name, script=script, args=list(args),
            started_at=now_iso(), run_dir=str(run_dir), device=profile.device,
            num_processes=nproc, num_machines=profile.machines, scheduler="slurm"))
        try:
            out = subprocess.run([sbatch, "--parsable", str(run_dir / S.SCRIPT_NAME)], cwd=cwd,
                                 capture_output=True, text=True, timeout=120,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrainwizError(f"sbatch did not submit the job: {exc}") from None
        if out.returncode != 0:
            why = slurm_message(out.stderr or out.stdout)
            raise TrainwizError(f"sbatch refused the job: {why}")
        answer = out.stdout.strip().split(";")[0]
        if not answer.isdigit():
            raise TrainwizError(f"sbatch answered {out.stdout.strip()!r}, not a job id")
        job_id = answer
        write_json_atomic(run_dir / J.JOB_FILE, {
            "job_id": job_id, "partition": part_name,
            "nodes": [], "submitted_at": now_iso(), "script": S.SCRIPT_NAME})
    except BaseException:
        if job_id is not None:  # submitted, but its run could not be recorded: take it back
            subprocess.run([shutil.which("scancel") or "scancel", job_id],
                           capture_output=True, stdin=subprocess.DEVNULL, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)
        if link is not None:
            try:
                link.unlink()
            except OSError:
                pass
        raise
    return RunHandle(run_dir=run_dir, id=run_id, notes=notes, job_id=job_id)
