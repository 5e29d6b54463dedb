"""``trainwiz runs show RUN``: one run in full: state, progress, and the estimated against the
measured peak memory."""

from __future__ import annotations

import json

from trainwiz.launchers.failures import failure_summary
from trainwiz.launchers.rundir import read_status, resolve_run
from trainwiz.launchers.runinfo import duration, progress_parts, run_report
from trainwiz.units import format_bytes


def cmd_show(args) -> int:
    from rich.console import Console
    from rich.text import Text

    run_dir = resolve_run(args.run or "last")
    status = read_status(run_dir)
    report = run_report(run_dir, status)
    if args.json:
        print(json.dumps(dict(status.to_json(), **report), indent=1))
        return 0
    console = Console(highlight=False)

    def say(text: str, style: str | None = None) -> None:
        console.print(Text(text, style=style or ""), soft_wrap=True)  # text, never markup

    say(f"run {status.id}  {status.state}" + (f"  (simulated {status.simulate})"
                                             if status.simulate else ""), "bold")
    say(f"profile {status.profile or '-'}  script {status.script or '-'} {' '.join(status.args)}")
    if status.failure is not None:
        say(f"failure: {failure_summary(status.failure)}", "red")
    prog = report["progress"]
    parts = progress_parts(prog, finished=status.finished)
    say("progress: " + (" · ".join(parts) if parts else
                        "nothing recognised in rank 0's output (see README: progress)"))
    if prog and prog.get("formats"):
        say(f"  read from: {', '.join(prog['formats'])}", "bright_black")
    mem = report["memory"]
    say("memory, estimated against measured peak:")
    if not mem["comparison"]:
        say(f"  {mem['reason']}")
        if mem.get("estimated_peak"):
            say(f"  estimated peak per GPU: {format_bytes(mem['estimated_peak'], 2, 'GiB')}")
    for g in mem["per_gpu"]:  # estimated beside measured: one unit, two places
        mark = "OVER" if g["over"] else "ok"
        say(f"  rank {g['rank']}  GPU {g['gpu']}  "
            f"estimated {format_bytes(g['estimated_peak'], 2, 'GiB')}  "
            f"measured {format_bytes(g['measured_peak'], 2, 'GiB')}  "
            f"({100 * g['ratio']:.0f}%)  {mark}",
            "bold red" if g["over"] else None)
    if mem["likely"]:
        say("  more than 10% over the estimate; likely different from the plan:", "bold red")
        for item in mem["likely"]:
            say(f"    - {item}")
    hosts = [h for h in mem.get("host_peaks", []) if h.get("host_peak")]
    if hosts:
        say("host memory peak (RSS): " + "  ".join(
            f"rank {h['rank']} {format_bytes(h['host_peak'], 2, 'GiB')}" for h in hosts))
    if prog and status.finished and prog.get("steps_per_s") and prog.get("step"):
        say(f"ran {prog['step']} steps at {prog['steps_per_s']:.3g} steps/s "
            f"(about {duration(prog['step'] / prog['steps_per_s'])} of training)",
            "bright_black")
    return 0
