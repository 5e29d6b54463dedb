"""What the README's set-up gives a new user: the training extra brings numpy (else every rank
warns "Failed to initialize NumPy"). The TUI benchmark without pexpect: tests/tui/test_terminal.py."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_the_torch_extra_installs_numpy_with_torch():
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip() for d in extras["torch"]]
    assert "torch" in names and "numpy" in names
