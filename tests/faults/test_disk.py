"""A full disk under a running run, and the commands that write on a full disk.

The state and config folders are put on a small tmpfs (mounted here: CI runs as root), the run
starts, the file system is then filled to the last byte, and the run must still end as it
would have: succeeded, with the disk-full episode recorded, and nothing left running.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.launchers.helpers import (
    launched_dir,
    run_pids,
    wait_all_gone,
    wait_running,
    wait_state,
    write_profile,
)

pytestmark = pytest.mark.slow
CHATTY = str(Path(__file__).with_name("chatty.py"))


@pytest.fixture
def small_fs(tmp_path):
    """A 16 MiB tmpfs, unmounted afterwards. Skips only where mounting is impossible (not
    root, or no mount permission in the container)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                              str(mnt)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """Write one file until the file system has no byte left."""
    path = folder / f"filler-{uuid.uuid4().hex}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    block = b"\0" * (1 << 16)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return path


def no_traceback(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr + out.stdout, out.stderr


def test_full_disk_keeps_the_run_alive_and_says_so(run_cli, tmp_path, small_fs):
    state = small_fs / "state"
    config = small_fs / "config"
    env = {"XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(config)}
    prof = write_profile(tmp_path)
    out = run_cli("launch", "-d", "--profile", str(prof), CHATTY, "--", "50", "0.15", env=env)
    assert out.returncode == 0, out.stderr
    run_dir = launched_dir(out.stdout)
    st = wait_running(run_dir)
    filler = fill(small_fs)

    final = wait_state(run_dir, ("succeeded", "failed", "stopped"), timeout=90)
    assert final["state"] == "succeeded", (final, (run_dir / "supervisor.log").read_text()[-2000:])
    assert final["message"].startswith("disk full since"), final["message"]
    assert [r["exit_code"] for r in final["ranks"]] == [0, 0]
    wait_all_gone(run_pids(final) + run_pids(st))

    listing = run_cli("runs", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "succeeded" in listing.stdout and "disk full since" in listing.stdout

    # still full: commands that write say which path, in one line, and change nothing
    assert not (run_dir / ".reserve").exists()  # the supervisor's reserve went with it
    fill(small_fs)
    again = run_cli("launch", "-d", "--profile", str(prof), CHATTY, "--", "1", "0", env=env)
    assert again.returncode != 0
    no_traceback(again)
    assert "the disk is full; nothing was started" in again.stderr
    assert str(state) in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert len([p for p in (state / "trainwiz" / "runs").iterdir()]) == 1  # no half run left

    stop = run_cli("stop", "last", env=env)
    assert stop.returncode == 0 and "already succeeded" in stop.stdout

    # profiles: free a little room for the store folder and one profile, then fill again
    filler.unlink()
    store = config / "trainwiz" / "profiles"
    store.mkdir(parents=True)
    (store / "a.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\nnum_processes: 2\n")
    fill(small_fs)
    for args in (("profiles", "cp", "a", "b"),
                 ("profiles", "import", str(prof), "--name", "imported"),
                 ("profiles", "export", "a", "--format", "accelerate", "-o",
                  str(small_fs / "acc.yaml"))):
        res = run_cli(*args, env=env)
        assert res.returncode != 0, res.stdout
        no_traceback(res)
        assert "the disk is full; nothing was changed" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in store.iterdir()) == ["a.yaml"]


def test_a_chatty_rank_on_a_full_disk_loses_lines_not_its_life(tmp_path, small_fs):
    """The rank entry script alone: stdout is a file on the full disk; the rank runs to the end
    and, once there is room again, says how much output was lost."""
    from trainwiz.launchers.command import rank_entry_path

    folder = small_fs / "attempt_0" / "0"
    folder.mkdir(parents=True)
    script = tmp_path / "talk.py"
    script.write_text(
        "import os, sys\n"
        "for i in range(200):\n"
        "    print('line', i, 'x' * 2000)\n"
        "    if i == 100:\n"
        "        os.unlink(sys.argv[1])  # the disk gets room again\n"
        "print('the end')\n")
    filler = None
    with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
        filler = fill(small_fs)
        res = subprocess.run([sys.executable, "-u", rank_entry_path(), str(script), str(filler)],
                             stdout=out, stderr=err, timeout=60)
    assert res.returncode == 0
    text = (folder / "stdout.log").read_text()
    assert "bytes of output were lost: disk full]" in text
    assert text.rstrip().endswith("the end")
