"""Launching and supervising runs: command building (pure), the supervisor, run directories.

Public API (the CLI and the app use only these names)::

    launch(profile, script, args, *, detach=True, module=False, simulate=None, yes=False,
           confirm=None, cwd=None) -> RunHandle(run_dir, id)
    preflight(profile, script, args, ...) -> Preflight      checks only, launches nothing
    stop_run(run_id_or_dir, grace=10.0) -> RunStatus
    list_runs() -> list[RunStatus]                          newest first
    read_status(run_dir) -> RunStatus                       .to_json() is the `runs --json` record
    resolve_run("last" | id | id prefix | path) -> Path
    read_samples(run_dir, last=None) -> list[Sample]          typed records (records.py)
    tail_log(run_dir, rank=0, n=50, stream="both") -> list[str]   "both": in the order written
    prune_runs(older_than=None, keep=None) -> (removed, skipped)  never a running run
    RunState                                                 the states, an enum
    build_command(profile, script, args, *, run_dir, run_id, port, ...) -> LaunchCommand

Importing this package is cheap (no torch, no psutil until used).

These names stay lazy (loaded on first use, from the table below), unlike the estimator's and
the hardware's: Python runs this file before any submodule, and the submodules include pure ones
(command, planvars, progress, slurm: no psutil, checked by tests/test_layering.py) and the
entry points of the supervisor and its watchdog. Eager imports here would give each of them the
whole launch stack (psutil, YAML, profiles, the estimator): measured on the 2-core machine
(a fresh interpreter, median of 7), ``import trainwiz.launchers.command`` takes 31 ms lazily
against 170 ms eagerly, the watchdog's start 101 ms against 180 ms.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "launch": "trainwiz.launchers.dispatch",  # local (this machine) or slurm_submit (sbatch)
    "preflight": "trainwiz.launchers.dispatch",
    "stop_run": "trainwiz.launchers.local",
    "RunHandle": "trainwiz.launchers.local",
    "Preflight": "trainwiz.launchers.checks",
    "list_runs": "trainwiz.launchers.rundir",
    "read_status": "trainwiz.launchers.rundir",
    "resolve_run": "trainwiz.launchers.rundir",
    "read_samples": "trainwiz.launchers.rundir",
    "tail_log": "trainwiz.launchers.rundir",
    "runs_root": "trainwiz.launchers.rundir",
    "prune_runs": "trainwiz.launchers.rundir",
    "RunState": "trainwiz.launchers.records",
    "RunStatus": "trainwiz.launchers.records",
    "RankStatus": "trainwiz.launchers.records",
    "Failure": "trainwiz.launchers.records",
    "Sample": "trainwiz.launchers.records",
    "GpuReading": "trainwiz.launchers.records",
    "RankReading": "trainwiz.launchers.records",
    "build_command": "trainwiz.launchers.command",
    "build_all_nodes": "trainwiz.launchers.command",
    "accelerate_env": "trainwiz.launchers.command",
    "LaunchCommand": "trainwiz.launchers.command",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainwiz.launchers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
