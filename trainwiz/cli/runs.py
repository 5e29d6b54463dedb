"""``trainwiz runs`` and ``runs prune``: the runs of this user, read from their folders
(``runs show``: cli/runs_show.py; ``attach``, ``stop``: cli/runs_control.py; ``logs``: cli/logs.py)."""

from __future__ import annotations

from trainwiz.cli.parser import SHOWN
from trainwiz.errors import UsageError
from trainwiz.launchers.failures import failure_summary
from trainwiz.launchers.rundir import count_runs, list_runs, parse_age, prune_runs, runs_root
from trainwiz.launchers.runinfo import (
    SIM_NOTE,
    duration,
    memory_over_text,
    progress_parts,
    run_kind,
    run_report,
)


def cmd_prune(args) -> int:
    if args.older_than is None and args.keep is None:
        raise UsageError("runs prune: give --older-than AGE (e.g. 7d) and/or --keep N")
    if args.keep is not None and args.keep < 0:
        raise UsageError(f"runs prune: --keep {args.keep}: expected 0 or more")
    older = parse_age(args.older_than) if args.older_than is not None else None
    removed, skipped = prune_runs(older_than=older, keep=args.keep, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(removed)} finished run{'s' if len(removed) != 1 else ''}"
          + (f"; kept {len(skipped)} that are still running, damaged and maybe in use, or not yours "
             f"({', '.join(r.id for r in skipped[:3])}{' ...' if len(skipped) > 3 else ''})"
             if skipped else ""))
    return 0


def cmd_runs(args) -> int:
    import json

    if args.json:
        print(json.dumps([dict(r.to_json(), simulate=r.simulate, **run_report(r.run_dir, r))
                          for r in list_runs()], indent=1))
        return 0
    runs = list_runs(None if args.all else SHOWN)
    hidden = 0 if args.all else max(0, count_runs() - len(runs))
    if not runs:
        print(f"no runs yet ({runs_root()}); start one with "
              "`trainwiz launch --profile NAME train.py`")
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    reports = {r.id: run_report(r.run_dir, r) for r in runs}  # the runs shown only

    def cell(text: str) -> Text:  # text from outside (profile, script, messages): never markup
        return Text(text, no_wrap=True, overflow="ellipsis")

    # One line a run at any width: a cell too long for its column is cut with "…"; the widest
    # cells (failure, profile, script) give way first, the id, state and ranks never.
    short = console.width < 100  # at 80 columns: narrower names, one space between columns,
    # and the progress cell's short form
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False,
                  padding=(0, 1, 0, 0) if short else (0, 1))
    ids = max(len(r.id) for r in runs)
    table.add_column(cell("ID (UTC start)"), width=max(ids, 14), no_wrap=True)
    table.add_column(cell("STATE"), no_wrap=True)
    names = max(10, (console.width - 60) // 3)  # 10 at 80 columns, 20 at 120
    table.add_column(cell("PROFILE"), max_width=min(names, 24))
    table.add_column(cell("SCRIPT"), max_width=min(names, 20))
    table.add_column(cell("RANKS"), no_wrap=True, justify="right")
    table.add_column(cell("FAILURE/PROGRESS"))
    for r in runs:
        fail = ""
        if r.damaged or (not r.failure and r.message and r.message.startswith("disk full")):
            fail = r.message or "status.json damaged"
        elif r.failure:
            fail = failure_summary(r.failure)
        elif r.slurm and not r.finished:  # a Slurm job: its state, and why it waits
            fail = f"Slurm job {r.slurm.get('job_id')} {r.slurm.get('state')}"
            if r.slurm.get("state") == "PENDING" and r.slurm.get("reason"):
                fail += f" ({r.slurm.get('reason')})"
            elif r.slurm.get("nodelist"):
                fail += f" on {r.slurm.get('nodelist')}"
        script = (r.script or "").rsplit("/", 1)[-1]
        state = ("DAMAGED" if r.damaged else str(r.state)) + (
            " OOM" if r.failure and r.failure.oom else "")
        # a failure first; else progress
        ranks = f"{len(r.ranks)} sim" if run_kind(r) == "sim" else str(len(r.ranks))
        table.add_row(*(cell(c) for c in (
            r.id, state, r.profile or "", script, ranks,
            fail or _progress_cell(reports[r.id], r.finished, short=short))))
    _print_rstripped(console, table)
    if any(run_kind(r) == "sim" for r in runs):  # a simulated number is labelled simulated
        console.print(SIM_NOTE, highlight=False, soft_wrap=True)
    for r in runs:  # a run over its memory estimate: what is likely different, below the table
        mem = reports[r.id]["memory"]
        if mem["over"]:
            console.print(Text(f"{r.id}: {memory_over_text(mem)}; likely: "
                               + "; ".join(mem["likely"]) + f" (trainwiz runs show {r.id})"),
                          soft_wrap=False)
    if hidden:
        console.print(f"... {hidden} older run{'s' if hidden != 1 else ''} not shown "
                      "(`trainwiz runs --all`; `trainwiz runs prune --older-than 7d` deletes "
                      "old ones)", highlight=False)
    return 0


def _print_rstripped(console, table) -> None:
    """The table without the blanks rich pads its last cells with: lines end where their text
    does, as they did when the table was laid out by hand (for grep, diff and copying)."""
    from rich.segment import Segment, Segments

    for line in console.render_lines(table, pad=False, new_lines=False):
        while line and not line[-1].control and not line[-1].text.strip():
            line.pop()
        if line and not line[-1].control:
            last = line[-1]
            line[-1] = Segment(last.text.rstrip(), last.style)
        console.print(Segments([*line, Segment.line()]), soft_wrap=True)


def _progress_cell(report: dict, finished: bool, short: bool = False) -> str:
    """A memory warning first (it matters most), then step, loss, rates and time left; the
    short form (80 columns): step/total and time left, or the loss once finished."""
    worst = max((g["ratio"] for g in report["memory"]["per_gpu"] if g["over"]), default=None)
    if not short:
        over = [f"MEMORY +{100 * (worst - 1):.0f}% over estimate"] if worst else []
        return " · ".join(over + progress_parts(report["progress"], finished=finished))
    prog = report["progress"] or {}
    parts = [f"MEM+{100 * (worst - 1):.0f}%"] if worst else []
    if prog.get("step") is not None:
        parts.append(f"{prog['step']}/{prog['total']}" if prog.get("total")
                     else f"step {prog['step']}")
    if not finished and prog.get("seconds_left") is not None:
        parts.append(f"{duration(prog['seconds_left'])} left")
    elif prog.get("loss") is not None:
        parts.append(f"loss {prog['loss']:.4g}")
    return " ".join(parts)
