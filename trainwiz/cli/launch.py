"""``trainwiz launch --profile NAME|FILE [--detach] [--yes] [--print-commands] SCRIPT [-- ARGS]``."""

from __future__ import annotations

from trainwiz.cli import simulate_spec
from trainwiz.cli.live import watch
from trainwiz.errors import TrainwizError
from trainwiz.launchers import dispatch, local
from trainwiz.launchers.slurm_submit import plan_script
from trainwiz.profiles import load_profile


_FLAGS = {"--detach": "detach", "-d": "detach", "--yes": "yes", "-y": "yes",
          "--print-commands": "print_commands", "--plain": "plain"}


def _own_flags_after_script(args, rest: list[str]) -> list[str]:
    """Arguments after SCRIPT: trainwiz's own switches (and --simulate) are trainwiz's wherever
    they stand before ``--``; everything else, and all after ``--``, goes to the script.

    So ``trainwiz launch -p P train.py --print-commands`` prints, and never starts a run with
    ``--print-commands`` handed to the script.
    """
    script_args: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "--":
            script_args += rest[i + 1:]
            break
        if tok in _FLAGS:
            setattr(args, _FLAGS[tok], True)
        elif tok == "--simulate" and i + 1 < len(rest):
            args.simulate = rest[i + 1]
            i += 1
        elif tok.startswith("--simulate="):
            args.simulate = tok.split("=", 1)[1]
        else:
            script_args.append(tok)
        i += 1
    return script_args


def _confirm(question: str) -> bool:
    import sys

    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def run(args) -> int:
    import sys

    rest = _own_flags_after_script(args, list(args.args or []))
    script = args.script
    module = False
    if args.module:
        if script is not None:
            rest = [script, *rest]
        script, module = args.module, True
    profile = load_profile(args.profile)
    simulate = simulate_spec(args)
    if args.print_commands and profile.scheduler == "slurm":
        text, notes = plan_script(profile, script, rest, module=module)
        for note in notes:
            print(f"# note: {note}", file=sys.stderr)
        sys.stdout.write(text)
        return 0
    if args.print_commands:
        pre = local.preflight(profile, script, rest, module=module, simulate=simulate, yes=None,
                            confirm=None)
        cmds = local.plan_commands(profile, pre, run_dir=f"trainwiz-run-{profile.name}", run_id=f"trainwiz-{profile.name}",
                                 module=module)
        for note in pre.notes:
            print(f"# {note}")
        for cmd in cmds:
            here = " (this machine)" if cmd.node_rank == profile.machine_rank else ""
            print(f"# machine {cmd.node_rank}{here}")
            print(cmd.shell())
        return 0
    handle = dispatch.launch(profile, script, rest, module=module, simulate=simulate, yes=args.yes,
                        confirm=_confirm)
    for note in handle.notes:  # a warning says so itself: not "note: warning: ..."
        print(note if note.startswith("warning:") else f"note: {note}", file=sys.stderr)
    if handle.job_id:
        print(f"submitted Slurm job {handle.job_id} as run {handle.id} ({handle.run_dir})",
              flush=True)
    else:
        print(f"launched run {handle.id} ({handle.run_dir})", flush=True)
    if args.detach:
        print(f"watch: trainwiz attach {handle.id}   stop: trainwiz stop {handle.id}   "
              f"logs: trainwiz logs {handle.id} --rank 0")
        return 0
    try:
        return watch(handle.run_dir, plain=True if args.plain else None)
    except TrainwizError:
        raise
