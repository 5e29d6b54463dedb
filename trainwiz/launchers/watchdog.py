"""The watchdog: ends a run whose supervisor died, even by SIGKILL.

The supervisor starts it (``boot_argv("watchdog", RUN_DIR)``) in its own session, with the read
end of a pipe as stdin that only the supervisor holds open. When the supervisor exits, however it
exits, the pipe closes; the watchdog then ends every process still carrying the run's mark
(:func:`~trainwiz.launchers.proctree.run_processes`) and, if the supervisor did not record an
end, marks the run failed. A clean end leaves nothing to do and the watchdog exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from trainwiz.launchers.proctree import run_processes, terminate
from trainwiz.launchers.records import Failure, RunState
from trainwiz.launchers.rundir import now_iso, read_status, save_status

log = logging.getLogger("trainwiz.supervisor")

GRACE_S = 5.0


def watchdog(run_dir: Path) -> int:
    """Block until the supervisor's pipe closes; then end what is left of the run."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    try:
        status = read_status(run_dir, check_alive=False)
    except Exception:
        return 0
    pids = [status.launcher_pid] + [r.pid for r in status.ranks]
    procs = run_processes(status.id, [p for p in pids if p])
    if status.finished and not procs:
        return 0
    if procs:
        log.warning("watchdog: supervisor gone; ending %d process(es) of run %s",
                    len(procs), status.id)
        terminate(procs, GRACE_S, first_signal_pgid=status.launcher_pid)
    status = read_status(run_dir, check_alive=False)
    if not status.finished:
        status.state = RunState.FAILED
        status.ended_at = now_iso()
        status.message = "the supervisor was killed; the watchdog ended the run's processes"
        if status.failure is None:
            status.failure = Failure(rank=None, exit_code=None,
                                     message="supervisor killed; run ended by its watchdog")
        try:
            save_status(run_dir, status)
        except OSError as exc:  # a full disk: readers see the supervisor gone, which says as much
            log.warning("watchdog: could not record the end of the run: %s", exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    logging.raiseExceptions = False  # a full disk drops log lines, never the watchdog
    return watchdog(Path(argv[0]))
