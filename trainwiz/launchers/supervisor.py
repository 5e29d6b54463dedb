"""The supervisor: a detached process that owns one run.

Started by :func:`trainwiz.launchers.local.launch` as ``python -c <boot> RUN_DIR`` in its own
session (no controlling terminal, stdin /dev/null, output to ``supervisor.log``), so a closed
terminal or a dropped SSH connection does not reach it. It

* starts the launcher (torchrun / accelerate) in its own process group, with
  ``PR_SET_PDEATHSIG=SIGTERM`` so the launcher (and through it, every rank) ends if the
  supervisor dies, and marks itself a child subreaper so ranks orphaned by a dying launcher are
  still its descendants (:mod:`~trainwiz.launchers.proctree`);
* starts a watchdog (:mod:`~trainwiz.launchers.watchdog`) that ends the run if the supervisor
  dies, even by SIGKILL;
* records ranks (found among its descendants by :class:`~trainwiz.launchers.proctree.RankFinder`),
  has their memory sampled (:mod:`~trainwiz.launchers.memsampler`) and ``status.json`` written
  on every change (:mod:`~trainwiz.launchers.statuswriter`: on a full disk the ranks keep
  running);
* on SIGTERM (``trainwiz stop``) runs the stop protocol: SIGTERM to the launcher's group, a grace
  period, then SIGKILL of everything left; state ``stopped``;
* when the launcher exits, sweeps any process still carrying the run's mark, gathers what the
  launcher and the ranks left (exit codes, torchrun's failure table, error files, log tails)
  and records the failure :func:`~trainwiz.launchers.outcome.name_failure` names.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from trainwiz.launchers.command import boot_argv
from trainwiz.launchers.failures import TableEntry, parse_failure_table, read_error_file
from trainwiz.launchers.outcome import Observed, RankEvidence, exit_codes, name_failure
from trainwiz.launchers.proctree import (
    RUN_MARK,
    SUPERVISOR_MARK,
    RankFinder,
    alive,
    become_subreaper,
    launcher_preexec,
    run_processes,
    terminate,
)
from trainwiz.launchers.memsampler import MemorySampler
from trainwiz.launchers.records import RunState, RunStatus
from trainwiz.launchers.rundir import (
    Failure,
    RankStatus,
    now_iso,
    rank_log_dir,
    read_status,
    tail_lines,
)
from trainwiz.launchers.runinfo import RunWatcher
from trainwiz.launchers.statuswriter import StatusWriter

log = logging.getLogger("trainwiz.supervisor")

POLL_S = 0.5
DEFAULT_GRACE_S = 10.0
LAUNCHER_LOG_LINES = 3000  # of launcher.log read for torchrun's failure report
RANK_TAIL_LINES = 60  # of a failed rank's stderr.log read for its message
# Set by torchrun for the processes it starts; trainwiz's launcher must own them, so they are
# taken out of the launcher's environment (a Kubeflow pod's RANK would otherwise reach it).
LAUNCHER_OWNED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                  "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID",
                  "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS")


# ---- the supervisor -------------------------------------------------------------------------

class Supervisor:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.command = json.loads((run_dir / "command.json").read_text())
        self.writer = StatusWriter(run_dir, read_status(run_dir, check_alive=False))
        self.grace = float(self.command.get("grace_s", DEFAULT_GRACE_S))
        self.stop_requested = False
        self.launcher: subprocess.Popen | None = None
        self.rank_gone_at: dict[int, float] = {}
        self.finder = RankFinder()
        self.watch = RunWatcher(run_dir)  # rank 0's progress and the ranks' peaks: progress.json
        self._watch_failed = False
        self.memory = MemorySampler(run_dir, self.writer, self.watch.on_sample)

    @property
    def status(self) -> RunStatus:
        """The run's status record, owned and saved by ``self.writer``."""
        return self.writer.status

    def set_state(self, state: RunState) -> None:
        if self.status.state != state:
            log.info("state %s -> %s", self.status.state, state)
            self.status.state = RunState(state)
        self.writer.write(force=True)

    def on_sigterm(self, signum, frame) -> None:
        self.stop_requested = True

    def start(self) -> int:
        become_subreaper()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self.on_sigterm)
        me = psutil.Process()
        self.status.supervisor_pid = me.pid
        self.status.supervisor_started = me.create_time()
        self.writer.make_reserve()
        self.writer.write(force=True)

        watchdog_w = self._start_watchdog()
        env = {k: v for k, v in os.environ.items()
               if k not in LAUNCHER_OWNED and k != SUPERVISOR_MARK}
        env.update(self.command.get("env", {}))
        env[RUN_MARK] = self.status.id
        env["TRAINWIZ_RUN_DIR"] = str(self.run_dir)
        argv = self.command["argv"]
        log.info("starting launcher: %s", " ".join(argv))
        try:
            with open(self.run_dir / "launcher.log", "ab") as out:
                self.launcher = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env, cwd=self.command.get("cwd") or None, start_new_session=True,
                    preexec_fn=launcher_preexec(os.getpid()),
                )
        except OSError as exc:
            self.status.failure = Failure(rank=None, exit_code=None,
                                          message=f"could not start {argv[0]}: {exc}")
            self.status.ended_at = now_iso()
            self.set_state(RunState.FAILED)
            return 1
        self.status.launcher_pid = self.launcher.pid
        self.writer.write(force=True)
        try:
            return self.loop()
        finally:
            os.close(watchdog_w)  # a clean end: the watchdog finds nothing left and exits

    def _start_watchdog(self) -> int:
        r, w = os.pipe()
        os.set_inheritable(r, True)
        env = {k: v for k, v in os.environ.items() if k != SUPERVISOR_MARK}  # not a supervisor
        with open(self.run_dir / "supervisor.log", "ab") as out:
            subprocess.Popen(boot_argv("watchdog", str(self.run_dir)),
                             stdin=r, stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True, close_fds=True)
        os.close(r)
        return w

    def loop(self) -> int:
        assert self.launcher is not None
        while True:
            rc = self.launcher.poll()
            try:
                self.track_ranks()
            except Exception:  # noqa: BLE001 - a bookkeeping hiccup must not end a healthy run
                log.exception("tracking ranks failed this poll; trying again")
            if self.status.state is RunState.STARTING and self.status.ranks:
                self.set_state(RunState.RUNNING)
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a bookkeeping hiccup must not end a healthy run
                log.exception("sampling failed this poll; trying again")
            self._watch()
            if rc is not None:
                return self.finish(rc)
            if self.stop_requested:
                return self.stop()
            self.writer.write()
            time.sleep(POLL_S)

    # ranks
    def track_ranks(self) -> None:
        now = time.time()
        known = {r.rank: r for r in self.status.ranks}
        by_pid, found = self.finder.scan(
            skip_pid=self.launcher.pid if self.launcher is not None else None,
            known={r.rank: r.pid for r in known.values()})
        for f in found:
            known[f.rank] = RankStatus(rank=f.rank, pid=f.pid, local_rank=f.local_rank,
                                       started=f.started)
            self.rank_gone_at.pop(f.rank, None)
            log.info("rank %d started: pid %d", f.rank, f.pid)
        for entry in known.values():
            if entry.rank in self.rank_gone_at or entry.pid is None:
                continue
            proc = by_pid.get(entry.pid)
            if proc is None or not alive(proc):
                self.rank_gone_at[entry.rank] = now
                log.info("rank %d (pid %d) exited", entry.rank, entry.pid)
        self.status.ranks = sorted(known.values(), key=lambda r: r.rank)

    def _watch(self, final: bool = False) -> None:
        try:
            self.watch.poll()
            self.watch.write(force=final,
                             finished=final and self.status.state is RunState.SUCCEEDED)
        except Exception:  # noqa: BLE001 - progress is a view; it must never end a run
            if not self._watch_failed:  # once: a full disk would fail every poll
                log.exception("reading the run's progress failed (said once)")
            self._watch_failed = True

    def sample(self, force: bool = False) -> None:
        """Sample the memory of the ranks still running (memsampler.py)."""
        self.memory.sample([r for r in self.status.ranks
                            if r.rank not in self.rank_gone_at and r.pid], force=force)

    # ending
    def stop(self) -> int:
        log.info("stop requested: SIGTERM to the launcher's group, %.0fs grace, then SIGKILL",
                 self.grace)
        self.status.message = "stopping: SIGTERM sent"
        self.writer.write()
        procs = run_processes(self.status.id, [self.launcher.pid] + [r.pid for r in self.status.ranks])
        left = terminate(procs, self.grace, first_signal_pgid=self.launcher.pid)
        try:
            rc = self.launcher.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            rc = self.launcher.wait()
        self.track_ranks()
        self.status.launcher_exit_code = rc
        for entry in self.status.ranks:
            if entry.exit_code is None:
                entry.exit_code = -signal.SIGTERM
        self.status.message = "stopped by request" + (
            f"; {len(left)} process(es) could not be killed" if left else "")
        self.status.ended_at = now_iso()
        self.set_state(RunState.STOPPED)
        self._watch(final=True)
        return 0

    def finish(self, rc: int) -> int:
        log.info("launcher exited with %s", rc)
        self.track_ranks()
        self.sample(force=True)
        try:
            return self._finish(rc)
        finally:
            self._watch(final=True)

    def _finish(self, rc: int) -> int:
        self.status.launcher_exit_code = rc
        leftovers = run_processes(self.status.id)
        if leftovers:
            log.warning("ending %d process(es) the launcher left behind", len(leftovers))
            terminate(leftovers, min(self.grace, 5.0))
        if self.stop_requested:
            self.status.ended_at = now_iso()
            self.status.message = "stopped by request"
            self.set_state(RunState.STOPPED)
            return 0
        failure = name_failure(self.observe(rc))
        if failure is None:
            self._add_unseen_ranks()
            for entry in self.status.ranks:
                entry.exit_code = 0
            self.status.ended_at = now_iso()
            self.set_state(RunState.SUCCEEDED)
            return 0
        self.status.failure = failure
        self.status.ended_at = now_iso()
        self.set_state(RunState.FAILED)
        return 0

    def _add_unseen_ranks(self) -> None:
        """Ranks that ran and ended between two polls left their log folder (torch's layout);
        record them too, so a quick run does not read as one with fewer ranks."""
        nproc = self.status.num_processes or 0
        known = {r.local_rank for r in self.status.ranks}
        for local in range(nproc):
            if local in known or rank_log_dir(self.run_dir, local) is None:
                continue
            rank = self.status.machine_rank * nproc + local
            if any(r.rank == rank for r in self.status.ranks):
                continue
            self.status.ranks.append(RankStatus(rank=rank, local_rank=local))
        self.status.ranks.sort(key=lambda r: r.rank)

    def _any_rank_output(self) -> bool:
        """Whether any rank left a trace (its output file), for ranks too quick to be seen."""
        return bool(glob.glob(str(self.run_dir / "torchrun" / "*" / "attempt_*" / "*" /
                                  "output.log")))

    # what the launcher and the ranks left, for name_failure
    def observe(self, rc: int) -> Observed:
        """Gather what the run left: the launcher's log and failure table, and for each rank the
        table lists its error file, stderr and when it was seen to exit. The ranks' exit codes
        are recorded from the table on the way."""
        launcher_log = tail_lines(self.run_dir / "launcher.log", LAUNCHER_LOG_LINES) if rc else []
        table = parse_failure_table("\n".join(launcher_log)) if rc else []
        if table:
            self._record_exit_codes(table)
        return Observed(
            launcher_exit_code=rc, launcher_log=launcher_log, table=table,
            ranks={e.rank: self._evidence(e) for e in table},
            rank_started=bool(self.status.ranks) or self._any_rank_output(),
            launcher=self.command["argv"][0])

    def _record_exit_codes(self, table: list[TableEntry]) -> None:
        known = {r.rank: r for r in self.status.ranks}
        for e in table:
            entry = known.setdefault(e.rank, RankStatus(rank=e.rank, pid=e.pid,
                                                        local_rank=e.local_rank))
            if e.pid:
                entry.pid = e.pid
        codes = exit_codes(table, [r for r, entry in known.items() if entry.exit_code is None])
        for r, code in codes.items():
            known[r].exit_code = code
        self.status.ranks = sorted(known.values(), key=lambda r: r.rank)

    def _evidence(self, e: TableEntry) -> RankEvidence:
        folder = rank_log_dir(self.run_dir, e.local_rank if e.local_rank is not None else e.rank)
        stderr = folder / "stderr.log" if folder is not None else None
        message, _ = read_error_file(e.error_file or (folder / "error.json" if folder else None))
        return RankEvidence(error_message=message, error_file_at=_mtime(e.error_file),
                            stderr_at=_mtime(stderr), stderr_tail=_tail(stderr, RANK_TAIL_LINES),
                            exited_at=self.rank_gone_at.get(e.rank))


def _mtime(path: str | Path | None) -> float | None:
    if not path:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _tail(path: Path | None, n: int) -> list[str]:
    try:
        return tail_lines(path, n)  # from the end: a huge log costs what n lines cost
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    logging.raiseExceptions = False  # a full disk drops log lines, never the supervisor
    run_dir = Path(argv[0])
    sup = Supervisor(run_dir)
    try:
        return sup.start()
    except Exception:
        log.exception("supervisor crashed")
        try:
            if sup.launcher is not None:
                terminate(run_processes(sup.status.id, [sup.launcher.pid]), 5.0,
                          first_signal_pgid=sup.launcher.pid)
            sup.status.failure = sup.status.failure or Failure(
                rank=None, exit_code=None, message="trainwiz supervisor crashed; see supervisor.log")
            sup.status.ended_at = now_iso()
            sup.set_state(RunState.FAILED)
        except Exception:
            log.exception("could not record the crash")
        return 1
    finally:
        sup.writer.release_reserve()
