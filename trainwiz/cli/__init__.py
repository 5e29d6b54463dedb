"""The ``trainwiz`` command: argument parsing and dispatch.

Each sub-command lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func``. Modules import only argparse at the top; whatever a command needs
(rich, the estimator, NVML, ...) is imported inside its handler, so ``trainwiz --help`` and the
app start fast and never pull in torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from trainwiz import __version__

# Sub-command modules, in the order they are listed in --help.
COMMAND_MODULES = (
    "trainwiz.cli.estimate",
    "trainwiz.cli.gpus",
    "trainwiz.cli.config",
    "trainwiz.cli.profiles",
    "trainwiz.cli.launch",
    "trainwiz.cli.runs",
)


def add_simulate_option(parser: argparse.ArgumentParser) -> None:
    """``--simulate SPEC`` on every command; ``TRAINWIZ_SIMULATE`` is its default."""
    parser.add_argument(
        "--simulate",
        metavar="SPEC",
        default=argparse.SUPPRESS,
        help="plan against a simulated GPU box: a preset such as 8xH100-80GB or 2x4090, "
        "or a YAML file (default: $TRAINWIZ_SIMULATE)",
    )


def simulate_spec(args: argparse.Namespace) -> str | None:
    """The simulation spec in force: ``--simulate`` wins over ``TRAINWIZ_SIMULATE``."""
    spec = getattr(args, "simulate", None)
    if spec is None:
        spec = os.environ.get("TRAINWIZ_SIMULATE") or None
    return spec


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line: what was wrong and where the help is (every
    subcommand's parser is one of these too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trainwiz",
        description="Plan, fit, launch and watch DDP/FSDP training runs. "
        "With no command, opens the full-screen app.",
    )
    parser.add_argument("--version", action="version", version=f"trainwiz {__version__}")
    add_simulate_option(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from trainwiz.errors import TrainwizError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command they were given to, not the top-level usage
        prog = f"trainwiz {args.command}" if getattr(args, "command", None) else "trainwiz"
        print(f"{prog}: unrecognized arguments: {' '.join(extra)} (see `{prog} --help`)",
              file=sys.stderr)
        return 2
    func = getattr(args, "func", None)
    try:
        if func is None:
            return _open_app(args)
        return int(func(args) or 0)
    except TrainwizError as err:
        print(f"trainwiz: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trainwiz ... | head`
        return 0


def _open_app(args: argparse.Namespace) -> int:
    from trainwiz.tui.app import run_app

    return int(run_app(simulate=simulate_spec(args)) or 0)
