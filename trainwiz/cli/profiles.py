"""``trainwiz profiles``: list, remove, copy and import saved profiles (``show``:
cli/profiles_show.py, ``export``: cli/profiles_export.py)."""

from __future__ import annotations

import argparse

from trainwiz.cli import simulate_spec
from trainwiz.errors import TrainwizError, UsageError
from trainwiz.hardware import detect
from trainwiz.profiles import (
    ProfileError,
    ProfileStore,
    accelerate_default_config_path,
    from_accelerate_config,
    is_accelerate_config,
    profile_from_dict,
    profile_to_dict,
    project_profile_dirs,
    project_save_dir,
    save_profile,
    user_profiles_dir,
)
from trainwiz.profiles.store import atomic_write_text, check_name
from trainwiz.profiles.summary import profile_summary
from trainwiz.profiles.validate import parse_yaml

# --------------------------------------------------------------------------- helpers

def rich_console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _gpus(args: argparse.Namespace) -> tuple:
    """GPUs of this (or the simulated) machine; a bad ``--simulate`` is the error it is (exit 2),
    a box without NVML simply has none."""
    return detect(simulate_spec(args)).gpus


def gpu_count(args: argparse.Namespace) -> int | None:
    return len(_gpus(args)) or None


def _short_error(error: str, path: str) -> str:
    """The first problem of a damaged file, without the path and the list of allowed keys."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    more = ""
    if len(lines) > 1 and lines[0].endswith("problems"):
        more = f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""
        lines = lines[1:]
    msg = lines[0] if lines else ""
    if msg.startswith(path):
        msg = msg[len(path):]
        msg = ("line " + msg[1:]) if msg[:1] == ":" and msg[1:2].isdigit() else msg.lstrip(": ")
    return msg.split("; allowed keys")[0] + more


# --------------------------------------------------------------------------- commands

def cmd_list(args: argparse.Namespace) -> int:
    entries = ProfileStore().list()
    if getattr(args, "json", False):
        import json

        out = []
        for e in entries:
            out.append({"name": e.name, "path": str(e.path), "scope": e.scope,
                        "damaged": e.damaged, "error": e.error, "shadowed": e.shadowed,
                        "profile": profile_to_dict(e.profile) if e.profile else None})
        print(json.dumps(out, indent=2))
        return 0
    console = rich_console()
    if not entries:
        console.print("No profiles yet. Create one with [bold]trainwiz config[/], or import an "
                      "accelerate config with [bold]trainwiz profiles import FILE --name NAME[/].")
        console.print(f"Looked in: {', '.join(map(str, project_profile_dirs()))}, "
                      f"{user_profiles_dir()}")
        return 0
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    home = str(Path.home())

    def shown(path) -> str:
        text = str(path)
        return "~" + text[len(home):] if home not in ("", "/") and text.startswith(home + "/") \
            else text

    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "SCOPE", "SETUP", "LAUNCHER", "MODEL"):
        table.add_column(col, overflow="fold")
    # a path is copied whole: the other columns fold first (it breaks only on a narrow terminal)
    table.add_column("PATH", overflow="fold",
                     min_width=min(60, max(len(shown(e.path)) for e in entries)))
    for e in entries:
        name = escape(e.name) + (" (shadowed)" if e.shadowed else "")
        if e.damaged:
            msg = _short_error(e.error or "", str(e.path))
            table.add_row(f"[red]{name}[/]", e.scope, f"[red]DAMAGED[/]: {escape(msg)}", "", "",
                          escape(shown(e.path)))
        else:
            p = e.profile
            model = p.estimate.model if p.estimate else ""
            table.add_row(name if not e.shadowed else f"[dim]{name}[/]", e.scope,
                          escape(profile_summary(p)), p.launcher, escape(model), escape(shown(e.path)))
    console.print(table)
    damaged = [e for e in entries if e.damaged]
    if damaged:
        console.print(f"[red]{len(damaged)} damaged profile(s)[/] (left as they are; "
                      "`trainwiz profiles show NAME` tells what is wrong)")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    import sys

    store = ProfileStore()
    path = store.removable(args.name)  # refuses any file that is not a profile, before asking
    if not args.yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise TrainwizError(f"not deleting {path} without confirmation; add --yes")
        import questionary

        if not questionary.confirm(f"Delete {path}?", default=False).ask():
            print("Nothing deleted.")
            return 1
    store.remove(args.name)
    print(f"Deleted {path}")
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    target = ProfileStore().copy(args.name, args.new, force=args.force)
    print(f"Copied {args.name} to {target}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    check_name(args.name)
    if args.from_accelerate_default:
        if args.file:
            raise UsageError("give FILE or --from-accelerate-default, not both")
        path = accelerate_default_config_path()
        if not path.is_file():
            raise ProfileError(f"{path}: no accelerate default config here (run `accelerate "
                               "config`, or set HF_HOME)")
    elif args.file:
        path = Path(args.file).expanduser()
    else:
        raise UsageError("profiles import needs FILE or --from-accelerate-default")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot be read: {exc}") from None
    data, lines = parse_yaml(text, str(path))
    if not data:  # an empty file would import as a profile of defaults the user never chose
        raise ProfileError(f"{path}: no settings in it; expected an accelerate config or a trainwiz "
                           "profile (see `trainwiz profiles import --help`)")
    warnings: list[str] = []
    if is_accelerate_config(data):
        kind = "accelerate config"
        profile = from_accelerate_config(data, name=args.name, source=str(path), lines=lines,
                                         warnings=warnings)
        target = save_profile(profile, scope="project" if args.project else "user",
                              force=args.force)
    else:
        # A trainwiz profile is copied byte for byte once it validates: comments stay.
        kind = "trainwiz profile"
        profile_from_dict(data, source=str(path), name=args.name, lines=lines)
        folder = project_save_dir() if args.project else user_profiles_dir()
        target = atomic_write_text(folder / f"{args.name}.yaml", text, force=args.force)
    for w in warnings:
        print(f"trainwiz: warning: {w}", file=sys.stderr)
    print(f"Imported {kind} {path} as profile '{args.name}': {target}")
    return 0


