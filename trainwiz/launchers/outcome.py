"""How a run ended: the named failure, decided from what the supervisor observed.

Pure: :func:`name_failure` takes an :class:`Observed` (the launcher's exit code and log tail,
torchrun's failure table, and for each rank in that table what was found of it: its error
file's message, when its error file and stderr were written, its stderr tail, when it was
seen to exit) and returns the :class:`~trainwiz.launchers.records.Failure` a user reads: which
rank failed first, with what message and exit code, whether it ran out of memory. No files, no
processes: the supervisor gathers the observations (:mod:`trainwiz.launchers.supervisor`), and
the tests give plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from trainwiz.launchers.failures import (
    TableEntry,
    agent_signalled,
    is_oom,
    message_from_log,
    signal_message,
)
from trainwiz.launchers.records import Failure

LAUNCHER_TAIL = 60  # lines of launcher.log a launcher failure is read from
_NO_MESSAGE = ("To enable traceback", "Signal ")  # torchrun's table text when it knows nothing


@dataclass(frozen=True)
class RankEvidence:
    """What was found of one rank that torchrun's failure table lists."""

    error_message: str | None = None  # from its torch elastic error file (``@record``)
    error_file_at: float | None = None  # when the error file the table names was written
    stderr_at: float | None = None  # when its stderr.log was last written
    stderr_tail: Sequence[str] = ()
    exited_at: float | None = None  # when the supervisor saw the process gone


@dataclass(frozen=True)
class Observed:
    """Everything :func:`name_failure` decides from."""

    launcher_exit_code: int
    launcher_log: Sequence[str] = ()  # launcher.log's tail (torchrun's own output)
    table: Sequence[TableEntry] = ()  # torchrun's failure report, parsed from that log
    ranks: Mapping[int, RankEvidence] = field(default_factory=dict)  # by rank, table entries
    rank_started: bool = True  # a rank was seen running, or left its output file
    launcher: str = "the launcher"  # argv[0], named when no rank ever started


def name_failure(seen: Observed) -> Failure | None:
    """The failure that ended the run, or None when it succeeded."""
    rc = seen.launcher_exit_code
    if rc == 0:
        if seen.rank_started:
            return None
        # The launcher said "done" but no rank ever ran: an interpreter that is not Python, a
        # wrapper that exits 0, a launcher that found nothing to do.
        return Failure(rank=None, exit_code=0,
                       message=f"the launcher exited 0 but no rank ever started (is "
                               f"{seen.launcher!r} a real Python with torch?); see launcher.log")
    if seen.table:
        return _rank_failure(seen.table, seen.ranks)
    # The launcher itself failed (bad arguments, rendezvous timeout, killed, ...).
    tail = list(seen.launcher_log[-LAUNCHER_TAIL:])
    if rc < 0:
        msg = f"the launcher was {signal_message(rc)}"
    else:
        msg = message_from_log(tail) or f"launcher exited with code {rc}"
    return Failure(rank=None, exit_code=rc, message=msg, oom=is_oom("\n".join(tail)))


def first_failed(table: Sequence[TableEntry], ranks: Mapping[int, RankEvidence]) -> TableEntry:
    """The rank that failed first. A rank that recorded its exception (error file) or wrote a
    crash to stderr failed when that was written (the error's own timestamp is whole seconds);
    a peer's "connection closed" error comes later. Ranks the launcher ended itself (SIGTERM or
    SIGKILL, nothing recorded) come last; then torchrun's root cause, then the lowest rank."""
    def key(e: TableEntry):
        ev = ranks.get(e.rank, RankEvidence())
        when = ev.error_file_at
        signalled = agent_signalled(e.exit_code) and when is None
        if when is None and not signalled:
            when = ev.stderr_at
        gone = ev.exited_at if ev.exited_at is not None else float("inf")
        return (signalled, when if when is not None else gone, gone, not e.root, e.rank)

    return min(table, key=key)


def _rank_failure(table: Sequence[TableEntry], ranks: Mapping[int, RankEvidence]) -> Failure:
    first = first_failed(table, ranks)
    ev = ranks.get(first.rank, RankEvidence())
    tail = list(ev.stderr_tail)
    msg = ev.error_message
    if not msg and first.message and not first.message.startswith(_NO_MESSAGE):
        msg = first.message.splitlines()[-1].strip() if "\n" in first.message else first.message
    if not msg:
        msg = message_from_log(tail)
    if not msg:
        msg = signal_message(first.exit_code) or f"exited with code {first.exit_code}"
    return Failure(rank=first.rank, exit_code=first.exit_code, message=msg,
                   oom=is_oom(msg) or is_oom("\n".join(tail)))


def exit_codes(table: Sequence[TableEntry], known: Sequence[int]) -> dict[int, int]:
    """Each rank's exit code after a failure: those torchrun's table lists, and 0 for the known
    ranks it does not list (it lists every rank that did not exit 0)."""
    codes = {r: 0 for r in known}
    codes.update({e.rank: e.exit_code for e in table})
    return codes
