"""Name a failed run: which rank failed first, its exit code, its message, whether it was OOM.

Sources, best first: the rank's torch elastic error file (``error.json``, written by
``@record`` / ``TORCHELASTIC_ERROR_FILE``), the failure table torchrun prints when it gives up
(``ChildFailedError``: rank, exit code, pid of every failed rank), and the rank's stderr tail.
Pure text handling: no torch.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from trainwiz.text import printable

OOM_PATTERNS = re.compile(
    r"CUDA out of memory|OutOfMemoryError|out of memory|CUBLAS_STATUS_ALLOC_FAILED|"
    r"Cannot allocate memory|std::bad_alloc|\bMemoryError\b|NCCL.*(?:ncclSystemError).*alloc",
    re.IGNORECASE,
)
MAX_ERROR_FILE = 4 * 1024 * 1024  # torch's error files are a few KiB; a larger one is not read
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure)[\w]*)(:.*)?$")


@dataclass
class TableEntry:
    rank: int
    local_rank: int | None
    exit_code: int
    pid: int | None
    error_file: str | None
    message: str
    root: bool = False



def is_oom(text: str | None) -> bool:
    return bool(text and OOM_PATTERNS.search(text))


def parse_failure_table(text: str) -> list[TableEntry]:
    """The entries of torchrun's ``ChildFailedError`` report (the last report in ``text``)."""
    start = text.rfind("Failures:")
    if start < 0:
        return []
    block = text[start:]
    entries: list[TableEntry] = []
    root_at = block.find("Root Cause")
    for m in re.finditer(r"^\[\d+\]:\n(?P<body>(?:  .*\n?)+)", block, re.MULTILINE):
        body = m.group("body")
        fields: dict[str, str] = {}
        key = None
        for line in body.splitlines():
            fm = re.match(r"^  (\w+)\s*: ?(.*)$", line)
            if fm and fm.group(1) in ("time", "host", "rank", "exitcode", "error_file", "traceback"):
                key = fm.group(1)
                fields[key] = fm.group(2)
            elif key == "traceback":
                fields[key] += "\n" + line[2:]
        rm = re.match(r"(\d+)(?: \(local_rank: (\d+)\))?", fields.get("rank", ""))
        em = re.match(r"(-?\d+)(?: \(pid: (\d+)\))?", fields.get("exitcode", ""))
        if not rm or not em:
            continue
        error_file = fields.get("error_file") or None
        if error_file == "<N/A>":
            error_file = None
        entries.append(TableEntry(
            rank=int(rm.group(1)),
            local_rank=int(rm.group(2)) if rm.group(2) else None,
            exit_code=int(em.group(1)),
            pid=int(em.group(2)) if em.group(2) else None,
            error_file=error_file,
            message=fields.get("traceback", "").strip(),
            root=root_at >= 0 and m.start() > root_at,
        ))
    return entries


def read_error_file(path: str | Path | None) -> tuple[str | None, float | None]:
    """(message, timestamp) from a torch elastic error file, or (None, None)."""
    if not path:
        return None, None
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_ERROR_FILE + 1)
        data = json.loads(raw) if len(raw) <= MAX_ERROR_FILE else None
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    msg = data.get("message")
    if isinstance(msg, dict):
        text = msg.get("message")
        ts = (msg.get("extraInfo") or {}).get("timestamp")
        if not text:
            text = (msg.get("extraInfo") or {}).get("py_callstack")
    else:
        text, ts = msg, data.get("timestamp")
    try:
        ts = float(ts) if ts is not None else None
    except (TypeError, ValueError):
        ts = None
    return (str(text).strip() if text else None), ts


def message_from_log(lines: list[str]) -> str | None:
    """The exception line of a traceback in a log tail (``RuntimeError: boom``), else the
    last non-empty line."""
    for line in reversed(lines):
        s = line.strip()
        if s.startswith("[rank") and "]:" in s:  # torch's "[rank1]: ..." prefix
            s = s.split("]:", 1)[1].strip()
        if _EXC_LINE.match(s):
            return s
    for line in reversed(lines):  # a crash of the interpreter itself (SIGABRT, SIGSEGV)
        s = line.strip()
        if s.startswith("Fatal Python error:") or s.startswith("terminate called"):
            return s
    for line in reversed(lines):
        if any(ch.isalnum() for ch in line):  # not a "*****" banner
            return line.strip()
    return None


def signal_message(exit_code: int | None) -> str | None:
    if exit_code is None or exit_code >= 0:
        return None
    try:
        name = signal.Signals(-exit_code).name
    except ValueError:
        name = f"signal {-exit_code}"
    extra = (" (by a user, or by the kernel when the host ran out of memory)"
             if -exit_code == signal.SIGKILL else "")
    return f"killed by {name}{extra}"


def agent_signalled(exit_code: int | None) -> bool:
    """Exit codes torchrun gives ranks it ends itself after another rank failed."""
    return exit_code in (-signal.SIGTERM, -signal.SIGKILL)


# ---- how a failure reads ----------------------------------------------------------------

def exit_text(exit_code: int | None) -> str | None:
    """``exit code 1``, ``SIGKILL`` (a negative code is the signal that ended the process), or
    None when no exit code was recorded (never a made-up one)."""
    if exit_code is None:
        return None
    if exit_code >= 0:
        return f"exit code {exit_code}"
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"


def failure_summary(failure) -> str:
    """The one line that says how a run failed, the same in ``trainwiz runs``, ``runs show``,
    the plain live view, the monitor and the app's Runs screen:
    ``rank 1 on node-b: torch.OutOfMemoryError: CUDA out of memory. ... (exit code 1, out of
    memory)``: who first and the message next, so a narrow column cut with "…" still says them.

    ``failure`` is a run's failure record (:class:`trainwiz.launchers.records.Failure`). Who:
    the rank (and its node on a Slurm run), else the launcher; the message's lines joined; then
    the exit code or signal and whether it ran out of memory, each only when recorded (never a
    made-up one). A record read from disk is text from outside: show it as text, never markup."""
    if failure.rank is not None:
        who = f"rank {failure.rank}" + (f" on {printable(str(failure.node))}"
                                        if failure.node else "")
    else:
        who = "launcher"
    message = " ".join(printable(str(failure.message or "")).split())
    details = []
    code = exit_text(failure.exit_code)
    if code is not None and (code.startswith("exit") or code not in message):
        details.append(code)  # a signal the message names already ("killed by SIGKILL") is not
    if failure.oom:
        details.append("out of memory")
    tail = f" ({', '.join(details)})" if details else ""
    if not message:
        return f"{who}{tail}"
    if failure.rank is None and message.lower().startswith(("the launcher ", "launcher ")):
        return f"{message}{tail}"  # "the launcher was killed by SIGKILL" names it already
    return f"{who}: {message}{tail}"
