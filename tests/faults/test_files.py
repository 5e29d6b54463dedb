"""Hostile files: YAML alias bombs, huge files, long names, `rm` of what is not a profile, a
second file for one name, saves killed mid-write, and huge logs read from the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BOMB = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.fixture
def store(isolated_env) -> Path:
    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "good.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\nnum_processes: 2\n")
    return folder


def one_line(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def test_an_alias_bomb_is_one_damaged_profile_and_the_others_still_work(run_cli, store):
    (store / "bomb.yaml").write_text(BOMB)
    (store / "huge.yaml").write_text("version: 1\ndescription: " + "x" * (2 * 1024 * 1024) + "\n")
    t0 = time.monotonic()
    listing = run_cli("profiles", "list")
    assert time.monotonic() - t0 < 20
    assert listing.returncode == 0, listing.stderr
    flat = " ".join(listing.stdout.split())
    assert "good" in flat and "bomb" in flat and "huge" in flat
    show = run_cli("profiles", "show", "bomb")
    assert show.returncode == 2
    assert "aliases (*name) expand to more than 100,000 values" in one_line(show)
    assert "bomb.yaml" in show.stderr
    huge = run_cli("profiles", "show", "huge")
    assert huge.returncode == 2 and "larger than 1024 KiB" in one_line(huge)
    assert run_cli("profiles", "show", "good").returncode == 0


def test_the_app_profile_list_survives_an_alias_bomb(store, isolated_env):
    """The Profiles screen reads the same store: one damaged entry, the rest usable."""
    from trainwiz.profiles import ProfileStore

    (store / "bomb.yml").write_text(BOMB)
    entries = {e.name: e for e in ProfileStore().list()}
    assert entries["good"].profile is not None
    assert "expand to more than" in entries["bomb"].error


def test_names_are_bounded_and_rm_removes_only_profiles(run_cli, store, tmp_path):
    long = run_cli("profiles", "cp", "good", "n" * 245)
    assert long.returncode == 2 and "is 245 characters long; allowed: at most 64" in one_line(long)

    script = tmp_path / "train.py"
    script.write_text("print('precious training code')\n")
    rm = run_cli("profiles", "rm", str(script), "--yes")
    assert rm.returncode == 2 and "not removed: it is not a valid trainwiz profile" in one_line(rm)
    assert script.read_text() == "print('precious training code')\n"
    outside = tmp_path / "mine.yaml"
    outside.write_text("version: 1\nstrategy: ddp\n")
    assert run_cli("profiles", "rm", str(outside), "--yes").returncode == 0  # a real profile
    assert not outside.exists()
    assert run_cli("profiles", "rm", "good", "--yes").returncode == 0
    assert not (store / "good.yaml").exists()


def test_copy_to_a_name_that_exists_as_yml_is_refused_not_doubled(run_cli, store):
    (store / "dup.yml").write_text("version: 1\nstrategy: fsdp\n")
    cp = run_cli("profiles", "cp", "good", "dup")
    assert cp.returncode == 2 and "dup.yml already exists" in one_line(cp)
    assert sorted(p.name for p in store.iterdir()) == ["dup.yml", "good.yaml"]
    forced = run_cli("profiles", "cp", "good", "dup", "--force")
    assert forced.returncode == 0
    assert sorted(p.name for p in store.iterdir()) == ["dup.yml", "good.yaml"]
    assert "strategy: ddp" in (store / "dup.yml").read_text()


def test_stale_temporary_files_of_killed_saves_are_swept(store):
    from trainwiz.profiles import ProfileStore

    old = store / ".good.yaml.abc123.tmp"
    new = store / ".good.yaml.def456.tmp"
    old.write_text("half a profi")
    new.write_text("being written right now")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    ProfileStore().list()
    assert not old.exists() and new.exists()  # a save in progress is left alone


SAVER = """
import sys
from trainwiz.profiles import Profile, save_profile
i = 0
print("ready", flush=True)
while True:
    i += 1
    # long descriptions: each version is ~300 KB, so a kill lands inside a write
    save_profile(Profile(name="p", description=f"v{i} " + "x" * 300_000), force=True)
"""


def test_kill_9_while_saving_never_leaves_a_damaged_profile(store, isolated_env):
    from trainwiz.profiles import Profile, load_profile, save_profile

    target = store / "p.yaml"
    save_profile(Profile(name="p", description="v0 " + "x" * 300_000))
    hits = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", SAVER], env=isolated_env,
                                cwd=str(REPO_ROOT), stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        # kill the moment a temporary file exists: inside the write, not between saves
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(e.name.startswith(".p.yaml.") for e in os.scandir(store)):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        hits += any(e.name.startswith(".p.yaml.") for e in os.scandir(store))
        prof = load_profile("p")  # parses and validates: old or new, never half
        assert prof.description.startswith("v") and prof.description.endswith("x" * 1000)
        assert target.stat().st_size > 300_000
    # the writes were hit, not only start-up: the killed writer's temporary file was left
    assert hits >= 2, hits


def test_logs_n_on_a_huge_log_reads_only_its_end(run_cli, isolated_env, tmp_path):
    run_id = "20260101-000000-b1g0"
    run_dir = Path(isolated_env["XDG_STATE_HOME"]) / "trainwiz" / "runs" / run_id
    folder = run_dir / "torchrun" / "x" / "attempt_0" / "0"
    folder.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"id": run_id, "state": "succeeded"}))
    line = b"step loss " + b"z" * 90 + b"\n"
    with open(folder / "output.log", "wb") as fh:
        for _ in range(200):
            fh.write(line * 10_000)  # 200 MB
        fh.write(b"the last line\n")
    code = ("import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, '-m', 'trainwiz', 'logs', 'last', '-n', '5'],"
            " stdout=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code], env=isolated_env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 150_000  # KiB: the interpreter and trainwiz, not the 200 MB log
    tail = run_cli("logs", "last", "-n", "2")
    assert tail.stdout.splitlines()[-1] == "the last line"


def test_a_simulated_box_file_with_an_alias_bomb_is_one_line(run_cli, tmp_path):
    box = tmp_path / "box.yaml"
    box.write_text(BOMB.replace("version: 1\n", "gpus: [H100-80GB]\n"))
    out = run_cli("gpus", "--simulate", str(box))
    assert out.returncode == 2
    assert "aliases (*name) expand to more than 100,000 values" in one_line(out)
