"""The real app in a real terminal: tmux at 80x24, keys sent, the pane read back as text."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"trainwiz-test-{uuid.uuid4().hex[:8]}"
        self.env = env

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=20).stdout

    def start(self, command: str, width: int = 80, height: int = 24) -> None:
        self.run("new-session", "-d", "-s", "app", "-x", str(width), "-y", str(height), command)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "app", *(["-l"] if literal else []), *keys)
        time.sleep(0.2)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait_for(self, *texts: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not on screen after {timeout}s:\n{screen}")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env,
                       capture_output=True, timeout=20)


@pytest.fixture
def tmux(isolated_env, tmp_path):
    env = dict(isolated_env)
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    env["TMUX_TMPDIR"] = str(tmp_path)
    session = Tmux(env)
    yield session
    session.kill()


def test_app_in_tmux_at_80x24(tmux, tmp_path):
    cmd = (f"cd {shlex.quote(str(tmp_path))} && {shlex.quote(sys.executable)} -m trainwiz "
           "--simulate 2xH100-80GB; echo EXITED $?; sleep 30")
    tmux.start(cmd)
    screen = tmux.wait_for("PLANNING MODE", "GPU 1", "79.6 GiB")
    assert "GPU 0" in screen and "util" in screen
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)

    tmux.keys("w")
    tmux.wait_for("Memory per GPU", "strategy")
    tmux.keys("llama-3-8b", literal=True)
    screen = tmux.wait_for("8.03B parameters", "needed per GPU")
    assert any(word in screen for word in ("FITS", "TIGHT", "DOES NOT FIT"))
    assert "Suggestions" in screen

    tmux.keys("Escape")  # leave the text field: one-letter keys navigate again
    footer = tmux.wait_for("q Quit").splitlines()[-1]
    # the whole footer fits 80 columns: saving, suggestions, screens, quitting, the palette
    for key in ("^s Save", "1-9 Apply", "g/w/p/l/r Screens", "q Quit", "^p palette"):
        assert key in footer, footer
    tmux.keys("p")
    tmux.wait_for("No profiles yet")
    tmux.keys("q")
    tmux.wait_for("EXITED 0")


@pytest.mark.slow
def test_launch_shows_the_monitor_and_leaving_keeps_the_run(tmux, tmp_path):
    """`trainwiz launch` on a terminal opens the monitor; q asks; leaving keeps the run;
    `trainwiz attach` brings it back and stop ends it."""
    from tests.conftest import REPO_ROOT

    bindir = shlex.quote(os.path.dirname(sys.executable))
    py = shlex.quote(sys.executable)
    profile = shlex.quote(str(REPO_ROOT / "examples" / "profiles" / "cpu-ddp.yaml"))
    script = shlex.quote(str(REPO_ROOT / "examples" / "train_ddp.py"))
    cmd = (f"cd {shlex.quote(str(tmp_path))} && export PATH={bindir}:$PATH && "
           f"{py} -m trainwiz launch --profile {profile} {script} -- --steps 2000 --sleep 0.05; "
           f"echo LAUNCH EXITED $?; {py} -m trainwiz attach last; echo ATTACH EXITED $?; "
           "sleep 60")
    tmux.start(cmd)
    screen = tmux.wait_for("RUNNING", "rank", "running", timeout=60)
    assert "cpu-ddp" in screen
    tmux.wait_for("step", timeout=60)  # the selected rank's log follows
    tmux.keys("q")
    tmux.wait_for("Stop the run", "Leave it running")
    tmux.keys("l")
    tmux.wait_for("LAUNCH EXITED 0")
    # `trainwiz attach last` runs next: the same run, still going
    tmux.wait_for("RUNNING", "running", timeout=30)
    tmux.keys("q")
    tmux.wait_for("Stop the run")
    tmux.keys("s")
    tmux.wait_for("ATTACH EXITED 1", timeout=60)  # stopped: not a success, as the plain view


def test_bad_simulation_spec_is_an_input_error_before_the_screen(run_cli):
    result = run_cli("--simulate", "3xNOPE")
    assert result.returncode == 2
    assert result.stderr.startswith("trainwiz: ") and "NOPE" in result.stderr


def test_without_a_terminal_the_app_says_so(run_cli):
    result = run_cli()  # stdin and stdout are pipes here
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_first_frame_benchmark_runs(isolated_env):
    """The benchmark stays runnable with the README's install (its figures are read by people,
    not asserted)."""
    code = ("import runpy, sys\n"
            "sys.modules['pexpect'] = None  # only what the README installs: no pexpect\n"
            "sys.argv = ['benchmarks.tui', '--runs', '1', '--simulate', '2xH100-80GB']\n"
            "runpy.run_module('benchmarks.tui', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], env=isolated_env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "first frame:" in result.stdout and "torch imported by the app: no" in result.stdout
