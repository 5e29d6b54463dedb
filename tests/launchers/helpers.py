"""Helpers for the launcher tests: profiles on disk, waiting on runs, process checks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
import yaml

from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
TRAIN_DDP = str(EXAMPLES / "train_ddp.py")
TRAIN_ACC = str(EXAMPLES / "train_accelerate.py")
RUN_KEYS = {"id", "state", "profile", "script", "started_at", "ended_at", "run_dir",
            "supervisor_pid", "ranks", "failure", "progress", "memory", "simulate"}


def write_profile(folder: Path, name: str = "cpu2", **fields) -> Path:
    data = {"version": 1, "strategy": "ddp", "device": "cpu", "num_processes": 2,
            "python": sys.executable}
    data.update(fields)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def runs_json(run_cli) -> list[dict]:
    out = run_cli("runs", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status_of(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "status.json").read_text())


def wait_state(run_dir, states, timeout: float = 90) -> dict:
    def check():
        st = status_of(run_dir)
        return st if st["state"] in states else None

    return wait_for(check, timeout, what=f"state in {states}")


def wait_running(run_dir, nranks: int = 2, timeout: float = 60) -> dict:
    def check():
        st = status_of(run_dir)
        live = [r for r in st["ranks"] if r["pid"] and alive(r["pid"])]
        return st if st["state"] == "running" and len(live) >= nranks else None

    return wait_for(check, timeout, what=f"{nranks} running ranks")


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run_pids(st: dict) -> list[int]:
    return [p for p in [st.get("launcher_pid"), st.get("supervisor_pid")]
            + [r["pid"] for r in st["ranks"]] if p]


def launched_dir(stdout: str) -> Path:
    for line in stdout.splitlines():
        if line.startswith("launched run "):
            return Path(line.split("(", 1)[1].rstrip(")"))
    raise AssertionError(f"no 'launched run' line in: {stdout!r}")


def wait_all_gone(pids, timeout: float = 15) -> None:
    """Every pid ends (the supervisor exits a moment after writing its final status)."""
    wait_for(lambda: not any(alive(p) for p in pids), timeout, what=f"pids {pids} to end")
