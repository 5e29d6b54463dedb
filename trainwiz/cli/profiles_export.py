"""``trainwiz profiles export NAME``: a profile as a trainwiz or accelerate config file, or (scheduler:
slurm) as the sbatch script ``trainwiz launch`` would submit."""

from __future__ import annotations

import argparse

from trainwiz.cli.profiles import gpu_count
from trainwiz.errors import UsageError
from trainwiz.launchers.slurm_submit import plan_script
from trainwiz.profiles import accelerate_config_text, accelerate_export_notes, load_profile
from trainwiz.profiles.store import atomic_write_text, profile_text


def cmd_export(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    profile = load_profile(args.name)
    if args.format == "accelerate":
        text = accelerate_config_text(profile, gpu_count(args))
        notes = accelerate_export_notes(profile)
    elif args.format == "sbatch":  # the script `trainwiz launch` would submit, for sbatch FILE
        text, slurm_notes = plan_script(profile, check=False)
        for note in slurm_notes:
            print(f"trainwiz: note: {note}", file=sys.stderr)
        notes = []
    else:
        text = profile_text(profile)
        notes = []
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        target = Path(args.output).expanduser()
        if not target.parent.is_dir():  # a mistyped folder is not made: cp and accelerate refuse too
            raise UsageError(f"-o {args.output}: no folder {target.parent}; nothing was written")
        target = atomic_write_text(target, text, force=args.force)
        print(f"Wrote {args.format} config {target}")
    for note in notes:
        print(f"trainwiz: note: not in the accelerate file: {note}", file=sys.stderr)
    return 0
