"""A run's processes, found and ended by their marks, never by a pid alone (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from tests.launchers.helpers import alive, wait_for
from trainwiz.launchers.proctree import RankFinder, run_processes, terminate

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def _started(pid: int) -> bool:
    """Past exec: its own command line (and environment), not the forking parent's.

    While the kernel swaps the image in, /proc/PID/cmdline reads empty: not started yet."""
    argv = psutil.Process(pid).cmdline()
    return bool(argv) and argv[-1].endswith("time.sleep(60)")


@pytest.fixture
def spawn():
    procs = []

    def start(argv, **env):
        proc = subprocess.Popen(argv, env={**os.environ, **env}, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        for child in psutil.Process(proc.pid).children(recursive=True) if alive(proc.pid) else []:
            child.kill()
        proc.kill()
        proc.wait()


def test_only_the_runs_marked_processes_are_found_and_ended(spawn):
    ours = spawn(SLEEP, TRAINWIZ_RUN_ID="20990101-000000-abcd")
    other_run = spawn(SLEEP, TRAINWIZ_RUN_ID="20990101-000000-ffff")
    stranger = spawn(SLEEP)  # a pid a forged status.json could name
    pids = [ours.pid, other_run.pid, stranger.pid]
    wait_for(lambda: all(_started(p) for p in pids), 10, what="the processes to start")

    found = run_processes("20990101-000000-abcd", pids)
    assert [p.pid for p in found] == [ours.pid]
    assert terminate(found, grace=5) == []
    assert ours.wait(5) == -15  # SIGTERM was enough
    assert alive(other_run.pid) and alive(stranger.pid)


def test_ranks_are_what_torchrun_started_not_their_workers_nor_a_pods_rank(spawn):
    with_worker = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
                   "'import time; time.sleep(60)']); time.sleep(60)")
    rank = spawn([sys.executable, "-c", with_worker], RANK="1", LOCAL_RANK="1",
                 TORCHELASTIC_RUN_ID="none", TORCHELASTIC_RESTART_COUNT="0")
    pod = spawn(SLEEP, RANK="5", LOCAL_RANK="3")  # a RANK inherited from a pod: not a rank
    worker = wait_for(lambda: psutil.Process(rank.pid).children(), 10, what="the worker")[0]
    wait_for(lambda: all(_started(p) for p in (rank.pid, pod.pid, worker.pid)), 10,
             what="the processes to start")

    finder = RankFinder()
    by_pid, found = finder.scan()
    ours = {rank.pid, pod.pid, worker.pid}
    assert ours <= set(by_pid)
    assert [(f.rank, f.local_rank, f.pid) for f in found if f.pid in ours] == [(1, 1, rank.pid)]
    # a rank already recorded with that pid is not reported again
    assert [f for f in finder.scan(known={1: rank.pid})[1] if f.pid in ours] == []
