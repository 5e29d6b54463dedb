"""What a command loads when it starts: ``trainwiz --help`` none of the command handlers and
nothing heavy, ``trainwiz COMMAND`` its own handler module only, and every handler the parser
names exists (a typo in the table would only show when that command is typed)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from trainwiz.cli import APP, load
from trainwiz.cli.live import MONITOR
from trainwiz.cli.parser import build_parser

HEAVY = ("rich", "textual", "questionary", "psutil", "pynvml", "yaml", "torch")


def _handlers(parser: argparse.ArgumentParser, prog: str = "trainwiz") -> dict[str, str]:
    """Every command line the parser knows -> the handler it names."""
    out = {}
    if parser.get_default("handler"):
        out[prog] = parser.get_default("handler")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(_handlers(sub, f"{prog} {name}"))
    return out


HANDLERS = _handlers(build_parser())
HANDLER_MODULES = sorted({target.split(":")[0] for target in HANDLERS.values()})


def _loaded(*args: str) -> set[str]:
    """The modules ``python -m trainwiz ARGS`` has imported when it exits (``sys.modules``:
    ``-X importtime`` does not list what importlib imports)."""
    code = ("import json, runpy, sys\n"
            f"sys.argv = ['trainwiz', *{list(args)!r}]\n"
            "try:\n"
            "    runpy.run_module('trainwiz', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n"
            "sys.stderr.write('\\nloaded: ' + json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stderr.rsplit("\nloaded: ", 1)[1]))


def _tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_every_command_names_a_handler_that_exists():
    assert {"trainwiz estimate", "trainwiz profiles show", "trainwiz runs prune",
            "trainwiz logs"} <= set(HANDLERS)
    for target in [*HANDLERS.values(), APP, MONITOR]:
        assert callable(load(target)), target


def test_help_loads_no_handler_and_nothing_heavy():
    loaded = _loaded("--help")
    assert "trainwiz.cli.parser" in loaded  # the measurement sees trainwiz's own modules
    assert not loaded & set(HANDLER_MODULES), sorted(loaded & set(HANDLER_MODULES))
    assert not _tops(loaded) & set(HEAVY), sorted(_tops(loaded) & set(HEAVY))
    assert not any(m.startswith("trainwiz.tui") for m in loaded)
    # the options' choices come from the estimator's vocabularies, and nothing else of it
    assert {m for m in loaded if m.startswith("trainwiz.estimator")} <= {
        "trainwiz.estimator", "trainwiz.estimator.types"}


@pytest.mark.parametrize("command", ["estimate", "runs", "profiles", "launch"])
def test_command_help_loads_no_handler(command):
    loaded = _loaded(command, "--help")
    assert not loaded & set(HANDLER_MODULES), sorted(loaded & set(HANDLER_MODULES))
    assert not _tops(loaded) & set(HEAVY), sorted(_tops(loaded) & set(HEAVY))


def test_a_command_loads_its_own_handler_only():
    loaded = _loaded("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--json")
    assert "trainwiz.cli.estimate" in loaded
    others = loaded & set(HANDLER_MODULES) - {"trainwiz.cli.estimate"}
    assert not others, sorted(others)
    assert not _tops(loaded) & {"textual", "questionary", "torch", "pynvml"}
