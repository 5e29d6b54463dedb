"""Shared test fixtures.

`run_cli` runs the real `trainwiz` command in a subprocess (``python -m trainwiz``) against this
checkout, with HOME and the XDG dirs pointed into a temporary folder so no test touches the
developer's own profiles or runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def isolated_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Environment for a trainwiz subprocess: private XDG dirs, this checkout on PYTHONPATH."""
    home = tmp_path / "home"
    for sub in ("config", "state", "cache", "data"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        COLUMNS="120",
        NO_COLOR="1",
    )
    env.pop("TRAINWIZ_SIMULATE", None)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("TRAINWIZ_SIMULATE", raising=False)
    return env


@pytest.fixture
def run_cli(isolated_env, tmp_path):
    """Run ``trainwiz ARGS...``; returns the CompletedProcess (text mode)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        full_env = dict(isolated_env)
        if env:
            full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "trainwiz", *args],
            cwd=cwd or tmp_path, env=full_env, input=input if input is not None else "",
            capture_output=True, text=True, timeout=timeout,
        )

    return run
