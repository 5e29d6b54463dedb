"""A run's processes: how they are marked, started, found and ended.

Every process of a run carries ``TRAINWIZ_RUN_ID`` in its environment (the supervisor sets it
for the launcher; the launcher and the ranks inherit it), and the supervisor carries
``TRAINWIZ_SUPERVISOR_OF``. A pid read from a status file is never trusted by itself: only a
live process of this user with the run's mark is ever signalled (a forged or stale status may
name any pid).

* :func:`launcher_preexec` / :func:`become_subreaper`: the launcher dies with the supervisor
  (``PR_SET_PDEATHSIG``), and ranks orphaned by a dying launcher stay the supervisor's
  descendants (``PR_SET_CHILD_SUBREAPER``);
* :func:`run_processes`: every live process of the run;
* :func:`terminate`: SIGTERM, a grace period, SIGKILL;
* :class:`RankFinder`: the ranks among the supervisor's descendants (by what torchrun sets).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass

import psutil

RUN_MARK = "TRAINWIZ_RUN_ID"  # in every process of a run: the run's id
SUPERVISOR_MARK = "TRAINWIZ_SUPERVISOR_OF"  # in the supervisor's environment: its run id

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watchdog still covers it
        pass


def become_subreaper() -> None:
    """Orphaned descendants (ranks whose launcher died) are re-parented to this process."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def launcher_preexec(parent_pid: int):
    """``preexec_fn`` for the launcher: SIGTERM when its parent (the supervisor) dies."""
    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the supervisor died between fork and prctl
            os._exit(1)

    return preexec


def alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run_processes(run_id: str, extra_pids=()) -> list:
    """Every live process of this user that belongs to the run: ``TRAINWIZ_RUN_ID`` is in its
    environment (the launcher and everything it starts inherit it). ``extra_pids`` are looked
    at first but only count when they carry the same mark, so a recorded pid that the system
    has since given to another process is never touched."""
    me = os.getpid()
    uid = os.getuid()
    found = {}

    def check(proc) -> None:
        try:
            if proc.pid == me or proc.pid in found or proc.uids().real != uid:
                return
            if proc.environ().get(RUN_MARK) == run_id and alive(proc):
                found[proc.pid] = proc
        except psutil.Error:
            pass

    for pid in extra_pids:
        if pid:
            try:
                check(psutil.Process(pid))
            except psutil.Error:
                pass
    for proc in psutil.process_iter():
        check(proc)
    return list(found.values())


def run_in_use(run_id: str) -> bool:
    """Whether a live process of this user carries ``run_id``'s mark: one of its ranks or its
    launcher (``TRAINWIZ_RUN_ID``) or its supervisor (``TRAINWIZ_SUPERVISOR_OF``). How a run
    folder that says nothing usable about itself (damaged) is known to be over."""
    uid = os.getuid()
    for proc in psutil.process_iter():
        try:
            if proc.uids().real != uid or not alive(proc):
                continue
            env = proc.environ()
        except psutil.Error:
            continue
        if env.get(RUN_MARK) == run_id or env.get(SUPERVISOR_MARK) == run_id:
            return True
    return False


def terminate(procs, grace: float, first_signal_pgid: int | None = None) -> list:
    """SIGTERM (to ``first_signal_pgid``'s group, else to each), wait ``grace``, SIGKILL the rest.
    Returns the processes that were still alive at the end (should be none)."""
    procs = [p for p in procs if alive(p)]
    if first_signal_pgid and first_signal_pgid not in {p.pid for p in procs}:
        first_signal_pgid = None  # the launcher is gone: never signal a group we cannot vouch for
    if first_signal_pgid:
        try:
            os.killpg(first_signal_pgid, signal.SIGTERM)
        except OSError:
            pass
    else:
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in procs):
        time.sleep(0.1)
    left = [p for p in procs if alive(p)]
    for p in left:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # ranks lead their own groups (torch's setsid)
        except OSError:
            pass
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    return [p for p in left if alive(p)]


# ---- finding the ranks ----------------------------------------------------------------------

@dataclass(frozen=True)
class FoundRank:
    rank: int
    local_rank: int
    pid: int
    started: float  # the process's create time (pid reuse guard)


class RankFinder:
    """The ranks among this process's descendants. A rank is a process torchrun made one:
    ``RANK`` together with the variables its agent sets for the workers it starts (a ``RANK``
    inherited from a pod's environment is not enough); a rank's own children (data loader and
    compile workers) carry the same ``RANK`` and are not ranks."""

    def __init__(self) -> None:
        self._env_cache: dict[int, dict] = {}

    def _environ(self, proc) -> dict | None:
        cached = self._env_cache.get(proc.pid)
        if cached is not None:
            return cached
        try:
            env = proc.environ()
        except psutil.Error:
            return None
        if "TORCHELASTIC_RESTART_COUNT" not in env and "TORCHELASTIC_RUN_ID" not in env:
            return {}
        found = {k: env[k] for k in ("RANK", "LOCAL_RANK") if k in env}
        # Only a rank's environment is cached: between fork and exec a new rank still shows
        # the agent's environment, so a miss is read again on the next poll.
        if "RANK" in found:
            self._env_cache[proc.pid] = found
        return found

    def scan(self, skip_pid: int | None = None, known: dict[int, int] | None = None
             ) -> tuple[dict[int, object], list[FoundRank]]:
        """(every descendant by pid, the ranks among them that are new or have a new pid).
        ``known``: rank -> pid already recorded (those are not looked at again)."""
        known = known or {}
        try:
            procs = psutil.Process(os.getpid()).children(recursive=True)
        except psutil.Error:
            procs = []
        by_pid = {p.pid: p for p in procs}
        found: list[FoundRank] = []
        for proc in procs:
            if proc.pid == skip_pid:
                continue
            env = self._environ(proc)
            if not env or "RANK" not in env:
                continue
            try:
                ppid = proc.ppid()
            except psutil.Error:  # it exited between the listing and now
                continue
            parent_env = self._environ(by_pid[ppid]) if ppid in by_pid else None
            if parent_env and parent_env.get("RANK") == env["RANK"]:
                continue  # a rank's own child (data loader worker, compile worker)
            try:
                rank = int(env["RANK"])
            except ValueError:
                continue
            if known.get(rank) == proc.pid or not alive(proc):
                continue
            try:
                started = proc.create_time()
            except psutil.Error:
                continue
            local = env.get("LOCAL_RANK", "")
            found.append(FoundRank(rank=rank, pid=proc.pid, started=started,
                                   local_rank=int(local) if local.isdigit() else rank))
        return by_pid, found
