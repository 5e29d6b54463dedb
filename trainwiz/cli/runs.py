"""``trainwiz runs`` and ``runs prune``: the runs of this user, read from their folders
(``runs show``: cli/runs_show.py; ``attach``, ``stop``: cli/runs_control.py; ``logs``: cli/logs.py)."""

from __future__ import annotations

from trainwiz.cli.parser import SHOWN
from trainwiz.errors import UsageError
from trainwiz.launchers.rundir import count_runs, list_runs, parse_age, prune_runs, runs_root
from trainwiz.launchers.runinfo import duration, memory_over_text, progress_parts, run_report


def cmd_prune(args) -> int:
    if args.older_than is None and args.keep is None:
        raise UsageError("runs prune: give --older-than AGE (e.g. 7d) and/or --keep N")
    if args.keep is not None and args.keep < 0:
        raise UsageError(f"runs prune: --keep {args.keep}: expected 0 or more")
    older = parse_age(args.older_than) if args.older_than is not None else None
    removed, skipped = prune_runs(older_than=older, keep=args.keep, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(removed)} finished run{'s' if len(removed) != 1 else ''}"
          + (f"; kept {len(skipped)} that are still running or damaged "
             f"({', '.join(r.id for r in skipped[:3])}{' ...' if len(skipped) > 3 else ''})"
             if skipped else ""))
    return 0


def cmd_runs(args) -> int:
    import json

    if args.json:
        print(json.dumps([dict(r.to_json(), **run_report(r.run_dir, r)) for r in list_runs()],
                         indent=1))
        return 0
    runs = list_runs(None if args.all else SHOWN)
    hidden = 0 if args.all else max(0, count_runs() - len(runs))
    if not runs:
        print(f"no runs yet ({runs_root()}); start one with "
              "`trainwiz launch --profile NAME train.py`")
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    reports = {r.id: run_report(r.run_dir, r) for r in runs}  # the runs shown only
    rows = []
    for r in runs:
        fail = ""
        if r.damaged or (not r.failure and r.message and r.message.startswith("disk full")):
            fail = r.message or "status.json damaged"
        elif r.failure:
            who = f"rank {r.failure.rank}" if r.failure.rank is not None else "launcher"
            if r.failure.node:  # a Slurm run: the node the rank ran on
                who += f" on {r.failure.node}"
            message = " ".join((r.failure.message or "").split())  # one line a run
            fail = f"{who}: {message}"
        elif r.slurm and not r.finished:  # a Slurm job: its state, and why it waits
            fail = f"Slurm job {r.slurm.get('job_id')} {r.slurm.get('state')}"
            if r.slurm.get("state") == "PENDING" and r.slurm.get("reason"):
                fail += f" ({r.slurm.get('reason')})"
            elif r.slurm.get("nodelist"):
                fail += f" on {r.slurm.get('nodelist')}"
        script = (r.script or "").rsplit("/", 1)[-1]
        state = ("DAMAGED" if r.damaged else str(r.state)) + (
            " OOM" if r.failure and r.failure.oom else "")
        # a failure first; else progress (its short form at 80 columns)
        rows.append((r.id, state, r.profile or "", script, str(len(r.ranks)),
                     fail or _progress_cell(reports[r.id], r.finished,
                                            short=console.width < 100)))
    head = ("ID (UTC start)", "STATE", "PROFILE", "SCRIPT", "RANKS", "FAILURE/PROGRESS")
    # every column as wide as its widest cell (profile and script capped), the failure cut to
    # what is left of the line: one line a run, at 80 columns too
    caps = (20, 12, 12, 16, 5) if console.width >= 100 else (20, 9, 8, 12, 5)
    widths = [min(cap, max(len(head[i]), *(len(row[i]) for row in rows))) for i, cap in enumerate(caps)]
    room = max(console.width - sum(widths) - 2 * len(widths), 12)

    def cut(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    for row in [head, *rows]:
        cells = [cut(c, w).ljust(w) for c, w in zip(row, widths)]
        line = "  ".join(cells) + "  " + cut(row[5], room)
        console.print(escape(line.rstrip()), style="bold" if row is head else None,
                      highlight=False, soft_wrap=True)
    for r in runs:  # a run over its memory estimate: what is likely different, below the table
        mem = reports[r.id]["memory"]
        if mem["over"]:
            console.print(escape(f"{r.id}: {memory_over_text(mem)}; likely: "
                                 + "; ".join(mem["likely"])
                                 + f" (trainwiz runs show {r.id})"),
                          highlight=False, soft_wrap=False)
    if hidden:
        console.print(f"... {hidden} older run{'s' if hidden != 1 else ''} not shown "
                      "(`trainwiz runs --all`; `trainwiz runs prune --older-than 7d` deletes "
                      "old ones)", highlight=False)
    return 0


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
