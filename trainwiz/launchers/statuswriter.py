"""Writing a run's ``status.json`` from the supervisor, through a full disk.

:class:`StatusWriter` owns the run's status record (:class:`~trainwiz.launchers.records.RunStatus`)
while the supervisor runs: it writes it atomically when it changed, never raises, and on a full
disk keeps the run going, says in the status since when the disk is full and how many memory
samples were dropped, and spends a reserve file kept in the run directory on the final status.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from trainwiz.atomic import is_disk_full
from trainwiz.launchers.records import RunStatus
from trainwiz.launchers.rundir import now_iso, save_status

log = logging.getLogger("trainwiz.supervisor")

REWRITE_S = 5.0  # status.json is rewritten at least this often, so a damaged one heals
RESERVE_BYTES = 256 * 1024  # kept free in the run directory for the last status on a full disk


class StatusWriter:
    """``status.json`` of one run, its disk-full note and the reserve that pays for the last write."""

    def __init__(self, run_dir: Path, status: RunStatus) -> None:
        self.run_dir = run_dir
        self.status = status
        self.samples_lost = 0
        self.disk_full_since: str | None = None
        self._reserve = run_dir / ".reserve"
        self._last_written: str | None = None
        self._written_at = 0.0

    def write(self, force: bool = False) -> bool:
        """Write status.json when it changed (and every REWRITE_S regardless, which heals a
        damaged file). Never raises: a full disk is recorded as soon as there is room, using
        the reserve kept in the run directory for the final status."""
        self._note_disk()
        data = json.dumps(self.status.to_file(), sort_keys=True)
        now = time.monotonic()
        if data == self._last_written and not force and now - self._written_at < REWRITE_S:
            return True
        for attempt in range(2):
            try:
                if attempt:  # the disk was found full just now: the status says so
                    self._note_disk()
                    data = json.dumps(self.status.to_file(), sort_keys=True)
                save_status(self.run_dir, self.status)
                self._last_written, self._written_at = data, now
                return True
            except OSError as exc:
                if is_disk_full(exc):
                    self.disk_full()
                    if (attempt == 0 and (self.status.finished or force)
                            and self.release_reserve()):
                        continue  # the final status: spend the reserve on it
                else:
                    log.warning("could not write status.json: %s", exc)
                return False
        return False

    def make_reserve(self) -> None:
        """Take RESERVE_BYTES of the run directory's disk for the final status (best effort)."""
        try:
            with open(self._reserve, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
        except OSError:
            pass

    def release_reserve(self) -> bool:
        """Give the reserve back; whether there was one."""
        try:
            self._reserve.unlink()
            return True
        except OSError:
            return False

    def disk_full(self) -> None:
        """Note that the disk is full (from the first time; the next write says so)."""
        if self.disk_full_since is None:
            self.disk_full_since = now_iso()
            log.warning("disk full: dropping memory samples until there is room; the ranks "
                        "keep running")

    def sample_lost(self, exc: OSError) -> None:
        """Count a memory sample that could not be written (the status says how many)."""
        self.samples_lost += 1
        if is_disk_full(exc):
            self.disk_full()
        elif self.samples_lost == 1:
            log.warning("could not write a memory sample: %s", exc)

    def _note_disk(self) -> None:
        if self.disk_full_since is None:
            return
        lost = f"{self.samples_lost} memory sample(s) dropped" if self.samples_lost else \
            "memory samples dropped"
        note = (f"disk full since {self.disk_full_since}: {lost}; the ranks kept running "
                "(rank output that found no room is counted in its log once there is room)")
        if self.status.message is None or self.status.message.startswith("disk full"):
            self.status.message = note
