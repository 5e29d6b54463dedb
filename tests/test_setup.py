"""What the README's set-up gives a new user: the training extra brings numpy (else every rank
warns "Failed to initialize NumPy"), and the README's benchmarks run with what it installs."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.conftest import REPO_ROOT


def test_the_torch_extra_installs_numpy_with_torch():
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip() for d in extras["torch"]]
    assert "torch" in names and "numpy" in names


def test_the_tui_benchmark_needs_no_pexpect():
    code = ("import runpy, sys\n"
            "sys.modules['pexpect'] = None  # as if only the README's install were there\n"
            "sys.argv = ['benchmarks.tui', '--runs', '1']\n"
            "runpy.run_module('benchmarks.tui', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "first frame:" in out.stdout and "torch imported by the app: no" in out.stdout
