"""The live view of a run for the CLI: plain lines, or the full-screen monitor on a terminal.

Plain lines (stdout is not a terminal, or no monitor is available): state changes, rank starts
and exits, the first failure, and memory per GPU (or per rank on CPU) every few seconds. It only
reads the run directory, so it works from any terminal, for any run, at any time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from trainwiz.cli import load
from trainwiz.launchers.failures import failure_summary
from trainwiz.launchers.local import stop_run
from trainwiz.launchers.records import RunState, Sample
from trainwiz.launchers.rundir import read_samples, read_status, tail_log
from trainwiz.launchers.runinfo import memory_over_text, progress_parts, run_report
from trainwiz.units import format_bytes
from trainwiz.text import printable

# The full-screen monitor, by name: its module loads Textual, which plain lines, `trainwiz runs`
# and `launch --detach` must not pay for (see trainwiz.cli.load).
MONITOR = "trainwiz.tui.monitor_app:run_monitor"


def _gpu_label(g) -> str:
    node = getattr(g, "node", None)  # a Slurm run's GPUs name their node
    return f"{node}:GPU{g.local_index}" if node else f"GPU{g.index}"


def _memory_line(sample: Sample, simulated: bool = False) -> str | None:
    gpus = sample.gpus
    if gpus:
        parts = [f"{_gpu_label(g)} {format_bytes(g.memory_used, unit='GiB', bare=True)}"
                 f"/{format_bytes(g.memory_total, unit='GiB')}"
                 for g in gpus]
        if simulated:  # CPU ranks' real memory, shown on the simulated box's GPUs
            return "memory (simulated GPUs, ranks' host memory): " + "  ".join(parts)
        return "memory: " + "  ".join(parts)
    ranks = sample.ranks
    if ranks:
        return "memory (host RSS): " + "  ".join(f"rank{r.rank} {format_bytes(r.rss)}"
                                                 for r in ranks)
    return None


def follow_plain(run_dir: Path, out=None, interval: float = 1.0, memory_every: float = 5.0) -> int:
    """Print the run's progress as plain lines until it ends. Returns 0 if it succeeded."""
    out = out or sys.stdout
    seen_state = None
    seen_note = None
    seen_ranks: dict[int, tuple] = {}
    last_mem = 0.0
    last_progress: list[str] = []
    last_over = None
    status = read_status(run_dir)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    while True:
        status = read_status(run_dir)
        if status.damaged:
            say(f"[{status.id}] DAMAGED: {status.message}; `trainwiz logs {status.id}` reads "
                f"its logs, `trainwiz stop {status.id}` ends it")
            return 1
        shown = str(status.state)
        if status.slurm:  # a Slurm job: Slurm's own state, and why it is pending
            shown += f" (Slurm job {status.slurm.get('job_id')} {status.slurm.get('state')}"
            reason = status.slurm.get("reason") if status.slurm.get("state") == "PENDING" else None
            shown += f": {reason})" if reason else ")"
        if shown != seen_state:
            say(f"[{status.id}] {shown}")
            seen_state = shown
        if status.message and status.message.startswith("disk full") \
                and status.message.split(":")[0] != seen_note:
            seen_note = status.message.split(":")[0]
            say(f"note: {status.message}")
        for r in status.ranks:
            key = (r.pid, r.exit_code)
            if seen_ranks.get(r.rank) == key:
                continue
            prev = seen_ranks.get(r.rank)
            if prev is None or prev[0] != r.pid:
                say(f"rank {r.rank}: started" + (f" (pid {r.pid})" if r.pid else ""))
            if r.exit_code is not None:
                say(f"rank {r.rank}: exited with code {r.exit_code}")
            seen_ranks[r.rank] = key
        now = time.monotonic()
        if now - last_mem >= memory_every and not status.finished:
            samples = read_samples(run_dir, last=1)
            line = _memory_line(samples[-1], bool(status.simulate)) if samples else None
            if line:
                say(line)
            report = run_report(run_dir, status)
            parts = progress_parts(report["progress"])
            if parts and parts != last_progress:
                say("progress: " + " · ".join(parts))
                last_progress = parts
            over = memory_over_text(report["memory"])
            if over and over != last_over:
                say(f"warning: {over}; likely: " + "; ".join(report["memory"]["likely"]))
                last_over = over
            last_mem = now
        if status.finished:
            break
        time.sleep(interval)
    if status.failure:
        f = status.failure
        say(f"FAILED: {failure_summary(f)}")
        if f.rank is not None:
            tail = tail_log(run_dir, f.rank, 10, stream="stderr")
            if tail:
                say(f"--- last lines of rank {f.rank} stderr ---")
                for line in tail:
                    say("  " + printable(line))  # a log's escape sequences never reach the terminal
    if status.message and status.state is RunState.STOPPED:
        say(status.message)
    report = run_report(run_dir, status)
    parts = progress_parts(report["progress"], finished=True)
    if parts:
        say("progress: " + " · ".join(parts))
    say(f"run {status.id} {status.state}; logs: trainwiz logs {status.id} --rank N; "
        f"files: {status.run_dir}")
    return 0 if status.state is RunState.SUCCEEDED else 1


def watch(run_dir: Path, *, plain: bool | None = None) -> int:
    """The live view; Ctrl-C asks whether to stop the run or leave it running."""
    if plain is None:
        plain = not sys.stdout.isatty()
    if not plain:
        return int(load(MONITOR)(run_dir) or 0)
    try:
        return follow_plain(run_dir)
    except KeyboardInterrupt:
        return on_interrupt(run_dir)


def on_interrupt(run_dir: Path) -> int:
    status = read_status(run_dir)
    if status.finished:
        return 0 if status.state is RunState.SUCCEEDED else 1
    answer = ""
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            answer = input(f"\nStop run {status.id}? [y/N] (N leaves it running) ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            answer = ""
    if answer in ("y", "yes"):
        final = stop_run(run_dir)
        print(f"run {final.id} {final.state}", flush=True)
        return 1
    print(f"\nrun {status.id} is still running; `trainwiz attach {status.id}` to watch it again, "
          f"`trainwiz stop {status.id}` to end it", flush=True)
    return 0
