"""The ``trainwiz`` command: parse the arguments, run the one handler they name.

``trainwiz.cli.parser`` holds every command's arguments and imports only argparse and cheap
constants; each command names its handler (``"trainwiz.cli.estimate:run"``). The handler
modules import what they use at the top, so a command loads its own module and nothing of the
others, and ``trainwiz --help`` loads none of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from trainwiz.cli.parser import add_simulate_option, build_parser, simulate_spec
from trainwiz.errors import TrainwizError
from trainwiz.text import printable

__all__ = ["add_simulate_option", "build_parser", "load", "main", "simulate_spec"]

# With no command: the full-screen app (it loads Textual).
APP = "trainwiz.tui.app:run_app"


def load(target: str) -> Callable:
    """``"package.module:function"`` -> that function, its module imported now.

    The command-dispatch seam, like console_scripts entry points: the one place trainwiz
    imports its own code by name. Every command's handler goes through here (so a command
    loads its module only when it runs), and so do the full-screen apps, whose modules load
    Textual: plain output and ``--help`` must not pay for it.
    """
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command they were given to, not the top-level usage
        prog = f"trainwiz {args.command}" if getattr(args, "command", None) else "trainwiz"
        print(f"{prog}: unrecognized arguments: {' '.join(extra)} (see `{prog} --help`)",
              file=sys.stderr)
        return 2
    handler = getattr(args, "handler", None)
    try:
        if handler is None:
            return _open_app(args)
        return int(load(handler)(args) or 0)
    except TrainwizError as err:
        # a message may quote what was typed or read (a path, a name): its lines, never its
        # escape sequences, reach the terminal
        lines = str(err).split("\n")
        print("trainwiz: " + "\n".join(printable(line) for line in lines), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trainwiz ... | head`
        return 0


def _open_app(args: argparse.Namespace) -> int:
    return int(load(APP)(simulate=simulate_spec(args)) or 0)
