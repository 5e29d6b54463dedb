"""``trainwiz attach`` and ``trainwiz stop``: act on a run that is (or was) running.

Apart from ``trainwiz runs`` and ``logs`` (cli/runs.py), which only read run folders: these
two load the launcher's process control and the live view.
"""

from __future__ import annotations

from trainwiz.cli.live import watch
from trainwiz.launchers.local import stop_run
from trainwiz.launchers.rundir import read_status, resolve_run


def cmd_attach(args) -> int:
    return watch(resolve_run(args.run), plain=True if args.plain else None)


def cmd_stop(args) -> int:
    run_dir = resolve_run(args.run)
    before = read_status(run_dir)
    if before.finished:
        print(f"run {before.id} already {before.state}")
        return 0
    if before.damaged:
        print(f"run {before.id} is damaged ({before.message}); stopping it by its id ...",
              flush=True)
    else:
        print(f"stopping run {before.id} ...", flush=True)
    final = stop_run(run_dir, grace=args.grace)
    # a damaged run's message says what was found: nothing running is not "stopped" silently
    print(f"run {final.id} {final.state}" + (f": {final.message}" if before.damaged else ""))
    return 0
