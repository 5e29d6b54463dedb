"""The core stays headless, and the CLI and app never import torch.

Statically, every import (function bodies included) is checked by import-linter against the
contracts in pyproject.toml. At run time, each module is imported in a fresh interpreter and we
look at what came with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

HEAVY = ("torch", "textual", "pynvml", "transformers", "accelerate")

# module -> what it must not pull in
PURE = {
    "trainwiz.estimator": HEAVY,
    "trainwiz.estimator.memory": HEAVY,
    "trainwiz.estimator.catalog": HEAVY,
    "trainwiz.estimator.suggest": HEAVY,
    "trainwiz.estimator.timing": HEAVY,
    "trainwiz.profiles": HEAVY,
    "trainwiz.plan": HEAVY + ("psutil",),
    "trainwiz.cli": HEAVY,
    "trainwiz.launchers": HEAVY,
    "trainwiz.launchers.command": HEAVY + ("psutil",),
    "trainwiz.launchers.planvars": HEAVY + ("psutil",),
    "trainwiz.launchers.progress": HEAVY + ("psutil",),
    "trainwiz.launchers.slurm": HEAVY + ("psutil",),
    "trainwiz.hardware.slurm": HEAVY,
    "trainwiz.hardware": HEAVY,  # pynvml only when NVML is actually probed
    # the app: Textual of course, but never torch, and NVML only from its workers
    "trainwiz.tui.app": ("torch", "pynvml", "transformers", "accelerate"),
}


def test_import_contracts_hold():
    """`lint-imports`: layers, no cycles, no UI/NVML/torch in pure logic (pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _imported_after(module: str, code: str = "") -> set[str]:
    script = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n{code}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_import_nothing_heavy(module):
    loaded = _imported_after(module)
    assert not loaded & set(PURE[module]), f"{module} pulled in {sorted(loaded & set(PURE[module]))}"


def test_estimate_command_never_imports_torch():
    code = (
        "from trainwiz.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['estimate', 'llama-3-8b', '--strategy', 'fsdp', '--num-gpus', '8', '--json'])\n"
        "assert rc == 0, rc\n"
    )
    loaded = _imported_after("trainwiz.cli", code)
    assert "torch" not in loaded
    assert "textual" not in loaded


def _imports_inside_functions(root: Path) -> list[str]:
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                own = (isinstance(node, ast.ImportFrom)
                       and (node.level > 0 or (node.module or "").split(".")[0] == "trainwiz")) \
                    or (isinstance(node, ast.Import)
                        and any(a.name.split(".")[0] == "trainwiz" for a in node.names))
                if own:
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def test_trainwiz_imports_its_own_modules_at_the_top():
    """A module's dependencies on trainwiz are read at its top (where import-linter and a reader
    see them), never hidden in a function; a command loads its handler by name in one place
    (trainwiz.cli.load). Third-party packages may still load late."""
    found = _imports_inside_functions(REPO_ROOT / "trainwiz")
    assert not found, found
