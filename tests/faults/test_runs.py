"""Forged and damaged run directories, broken interpreters, a RANK in the environment, logs in
the order written: what the user sees, and that no process is left behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.launchers.helpers import (
    TRAIN_DDP,
    alive,
    launched_dir,
    run_pids,
    runs_json,
    status_of,
    wait_all_gone,
    wait_for,
    wait_running,
    wait_state,
    write_profile,
)

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow  # real launches (most tests here)


def runs_dir(env: dict) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "trainwiz" / "runs"


def forge(env: dict, run_id: str, status) -> Path:
    d = runs_dir(env) / run_id
    d.mkdir(parents=True, exist_ok=True)
    if status is not None:
        (d / "status.json").write_text(status if isinstance(status, str) else json.dumps(status))
    return d


def clean(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    return out


@pytest.fixture
def harmless():
    """A process of ours that a forged status names; it must survive every command."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                            start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_stop_never_signals_a_process_a_forged_status_names(run_cli, isolated_env, harmless):
    started = psutil.Process(harmless.pid).create_time()
    forge(isolated_env, "20990101-000000-f0f0", {
        "id": "20990101-000000-f0f0", "state": "running", "supervisor_pid": harmless.pid,
        "supervisor_started": started, "launcher_pid": harmless.pid,
        "ranks": [{"rank": 0, "pid": harmless.pid}]})
    out = clean(run_cli("stop", "last", "--grace", "1"))
    assert out.returncode == 0, out.stderr
    assert "stopped" in out.stdout
    time.sleep(0.5)
    assert harmless.poll() is None, "stop signalled a process that is not the run's supervisor"
    final = status_of(runs_dir(isolated_env) / "20990101-000000-f0f0")
    assert final["state"] == "stopped"
    assert final["message"] == "nothing of this run was running; marked stopped"


def test_a_run_folder_of_another_user_is_not_touched(run_cli, isolated_env, harmless):
    d = forge(isolated_env, "20990101-000000-0th3", {
        "id": "20990101-000000-0th3", "state": "running", "supervisor_pid": harmless.pid})
    os.chown(d, 4242, 4242)
    out = clean(run_cli("stop", "last"))
    assert out.returncode == 2
    assert "owned by another user (uid 4242)" in out.stderr
    assert harmless.poll() is None
    listing = clean(run_cli("runs"))
    assert "DAMAGED" in listing.stdout and "another user" in listing.stdout


DAMAGES = {
    "empty": "{}",
    "null": "null",
    "list": "[]",
    "ranks-a-string": json.dumps({"id": "X", "state": "running", "ranks": "0,1"}),
    "pid-a-string": json.dumps({"id": "X", "state": "running", "supervisor_pid": "12"}),
    "failure-a-number": json.dumps({"id": "X", "state": "failed", "failure": 3}),
    "unknown-state": json.dumps({"id": "X", "state": "exploded"}),
    "half-written": '{"id": "X", "state": "runn',
}


def test_damaged_runs_are_rows_never_a_failed_list(run_cli, isolated_env):
    good = forge(isolated_env, "20260101-000000-good", {
        "id": "20260101-000000-good", "state": "succeeded", "profile": "p",
        "started_at": "2026-01-01T00:00:00+00:00"})
    for i, (name, text) in enumerate(DAMAGES.items()):
        run_id = f"20260102-00000{i}-{name[:4]}"
        forge(isolated_env, run_id, text.replace('"X"', json.dumps(run_id)))
    unreadable = forge(isolated_env, "20260103-000000-dir0", None)
    (unreadable / "status.json").mkdir()  # a folder where the file should be
    (unreadable / "command.json").write_text("{}")

    listing = clean(run_cli("runs"))
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("DAMAGED") == len(DAMAGES) + 1
    assert "succeeded" in listing.stdout
    data = runs_json(run_cli)
    assert len(data) == len(DAMAGES) + 2
    assert data[0]["id"] == "20260103-000000-dir0" and data[0]["state"] == "damaged"
    assert {d["state"] for d in data} == {"damaged", "succeeded"}

    for args in (("logs", "last"), ("attach", "last", "--plain"), ("logs", good.name)):
        out = clean(run_cli(*args, timeout=30))
        assert out.returncode in (0, 1), out.stderr
    attach = run_cli("attach", "20260102-000002", "--plain")
    assert "DAMAGED: status.json: expected a mapping, got a list" in attach.stdout
    stop = clean(run_cli("stop", "last"))  # the newest folder, damaged: stopped by its id ...
    assert stop.returncode == 1 and "is damaged" in stop.stdout
    assert "the run was stopped but its status could not be written (Is a directory)" \
        in stop.stderr  # ... and what it could not do is said, not hidden
    stop = clean(run_cli("stop", "20260102-000000"))
    assert stop.returncode == 0 and "is damaged" in stop.stdout
    assert "stopped: nothing of this run was running; marked stopped" in stop.stdout
    # what the damaged file held is kept beside the new status, not wiped
    kept = runs_dir(isolated_env) / "20260102-000000-empt" / "status.json.damaged"
    assert "kept as status.json.damaged" in stop.stdout
    assert kept.read_text() == DAMAGES["empty"]
    assert status_of(runs_dir(isolated_env) / "20260102-000000-empt")["state"] == "stopped"


def test_a_damaged_status_of_a_live_run_heals_and_the_run_can_be_stopped(run_cli, tmp_path):
    prof = write_profile(tmp_path)
    out = run_cli("launch", "-d", "--profile", str(prof), TRAIN_DDP, "--", "--steps", "1000",
                  "--sleep", "0.2")
    run_dir = launched_dir(out.stdout)
    st = wait_running(run_dir)
    (run_dir / "status.json").write_text("[]")
    listing = clean(run_cli("runs"))
    assert "DAMAGED" in listing.stdout
    wait_for(lambda: isinstance(st := status_of(run_dir), dict) and st["state"] == "running", 15,
             what="the supervisor to rewrite its status")

    (run_dir / "status.json").write_text('{"id": 7}')
    stop = clean(run_cli("stop", "last", "--grace", "3"))
    assert stop.returncode == 0, stop.stderr
    assert "is damaged" in stop.stdout and "stopped" in stop.stdout
    wait_all_gone(run_pids(st), 20)
    assert status_of(run_dir)["state"] == "stopped"


def test_a_rank_in_the_environment_does_not_fool_the_supervisor(run_cli, tmp_path):
    prof = write_profile(tmp_path)
    pod = {"RANK": "5", "WORLD_SIZE": "9", "LOCAL_RANK": "3", "MASTER_ADDR": "10.9.9.9",
           "MASTER_PORT": "1"}
    out = run_cli("launch", "-d", "--profile", str(prof), str(HERE / "chatty.py"), "--", "25",
                  "0.1", env=pod)
    assert out.returncode == 0, out.stderr
    run_dir = launched_dir(out.stdout)
    st = wait_running(run_dir)
    launcher = st["launcher_pid"]
    assert launcher not in [r["pid"] for r in st["ranks"]]
    final = wait_state(run_dir, ("succeeded", "failed"))
    assert final["state"] == "succeeded", final
    assert [(r["rank"], r["exit_code"]) for r in final["ranks"]] == [(0, 0), (1, 0)]

    bad = write_profile(tmp_path, "withrank", env={"RANK": "0"})
    refused = clean(run_cli("launch", "-d", "--profile", str(bad), TRAIN_DDP))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "key 'env.RANK'" in refused.stderr


def test_each_rank_log_keeps_the_order_it_was_written(run_cli, tmp_path):
    prof = write_profile(tmp_path)
    out = run_cli("launch", "--plain", "--profile", str(prof), str(HERE / "order.py"))
    assert out.returncode == 0, out.stderr
    logs = clean(run_cli("logs", "last", "--rank", "1"))
    lines = [ln for ln in logs.stdout.splitlines()
             if ln.startswith(("print", "INFO logging")) or "a warning between" in ln]
    assert lines[:9] == ["print 0", "INFO logging 0", "print 1", "INFO logging 1", "print 2",
                         "INFO logging 2", "print 3", "INFO logging 3",
                         lines[8]] and "a warning between" in lines[8]
    assert lines[-1] == "print last"
    assert clean(run_cli("logs", "last", "-n", "1")).stdout == "print last\n"


def _interpreter(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_broken_interpreters_are_refused_quickly_leaving_nothing(run_cli, tmp_path):
    endless = _interpreter(tmp_path, "endless", "exec yes 'python says hi'\n")
    hangs = _interpreter(tmp_path, "hangs", f"echo $$ > {tmp_path}/hang.pid\n"
                                            "sleep 300 & echo $! > " f"{tmp_path}/child.pid\n"
                                            "wait\n")
    liar = _interpreter(tmp_path, "liar", "echo nonsense; echo '[1, 2'\n")
    for python, expect in ((endless, "it printed more than 64 KiB"),
                           (liar, "it did not answer like a Python interpreter")):
        prof = write_profile(tmp_path, "broken", python=python)
        t0 = time.monotonic()
        out = clean(run_cli("launch", "-d", "--profile", str(prof), TRAIN_DDP))
        assert out.returncode == 2 and time.monotonic() - t0 < 15
        assert expect in out.stderr and "key 'python'" in out.stderr
        assert out.stderr.count("\n") == 1
    assert runs_json(run_cli) == []

    prof = write_profile(tmp_path, "hangs", python=hangs)
    import trainwiz.launchers.checks as api  # the same check, with a shorter wait than the CLI's

    from trainwiz.errors import TrainwizError
    from trainwiz.profiles import load_profile

    old, api.PROBE_TIMEOUT_S = api.PROBE_TIMEOUT_S, 2.0
    try:
        with pytest.raises(TrainwizError, match="did not answer within 2 s"):
            api.preflight(load_profile(str(prof)), TRAIN_DDP)
    finally:
        api.PROBE_TIMEOUT_S = old
    child = int((tmp_path / "child.pid").read_text())
    wait_for(lambda: not alive(child), 5, what="the hung interpreter's child to be gone")


def test_an_interpreter_that_only_pretends_gives_a_failed_run_with_a_reason(run_cli, tmp_path):
    fake = _interpreter(tmp_path, "fake", "echo '{\"torch\": true}'\n")
    prof = write_profile(tmp_path, python=fake)
    out = clean(run_cli("launch", "-d", "--profile", str(prof), TRAIN_DDP))
    assert out.returncode == 0, out.stderr
    run_dir = launched_dir(out.stdout)
    final = wait_state(run_dir, ("succeeded", "failed"), timeout=30)
    assert final["state"] == "failed" and final["ranks"] == []
    assert "no rank ever started" in final["failure"]["message"]
    assert fake in final["failure"]["message"]


def _age(folder: Path, seconds: float) -> None:
    """Make a forged run folder and its files look last changed ``seconds`` ago."""
    then = time.time() - seconds
    for p in [*folder.iterdir(), folder]:
        os.utime(p, (then, then))


def test_prune_deletes_a_damaged_run_folder_only_once_nothing_carries_its_id(
        run_cli, isolated_env):
    def damaged(run_id: str, age: float) -> Path:  # created, status.json never written
        d = forge(isolated_env, run_id, None)
        (d / "command.json").write_text("{}")
        _age(d, age)
        return d

    gone = damaged("20260101-000000-gone", 3 * 86400)
    live = damaged("20260101-000001-live", 3 * 86400)
    fresh = damaged("20260101-000002-frsh", 30)  # a launch writing it now
    theirs = damaged("20260101-000003-thrs", 3 * 86400)
    os.chown(theirs, 4242, 4242)
    _age(theirs, 3 * 86400)
    # a rank of the "live" run: a process of ours with the run's mark
    rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                            env=dict(os.environ, TRAINWIZ_RUN_ID=live.name),
                            start_new_session=True)
    try:
        assert clean(run_cli("runs")).stdout.count("DAMAGED") == 4
        shown = clean(run_cli("stop", gone.name))  # what the user saw: no other way out
        assert "not a trainwiz run (no status.json); `trainwiz runs prune` deletes" \
            in shown.stderr
        pruned = clean(run_cli("runs", "prune", "--keep", "0"))
        assert pruned.returncode == 0, pruned.stderr
        assert "deleted 1 finished run; kept 3" in pruned.stdout
        assert sorted(p.name for p in runs_dir(isolated_env).iterdir()) == sorted(
            [live.name, fresh.name, theirs.name])
        assert rank.poll() is None  # never a process of a run
    finally:
        rank.kill()
        rank.wait()
    _age(live, 3 * 86400)
    pruned = clean(run_cli("runs", "prune", "--older-than", "1d"))
    assert "deleted 1 finished run; kept 1" in pruned.stdout  # the other user's
    assert sorted(p.name for p in runs_dir(isolated_env).iterdir()) == [fresh.name, theirs.name]


def test_many_runs_are_listed_with_a_count_of_the_hidden_and_pruned_safely(
        run_cli, isolated_env, harmless):
    for i in range(55):
        run_id = f"202601{i // 28 + 1:02d}-{i % 28:02d}0000-{i:04x}"
        forge(isolated_env, run_id, {
            "id": run_id, "state": "succeeded", "started_at": "2026-01-01T00:00:00+00:00",
            "ended_at": "2026-01-01T00:10:00+00:00"})
    live_id = "20990101-000000-live"  # "running": its supervisor (here: a process of ours) lives
    forge(isolated_env, live_id, {
        "id": live_id, "state": "running", "supervisor_pid": harmless.pid,
        "supervisor_started": psutil.Process(harmless.pid).create_time()})
    listing = clean(run_cli("runs"))
    assert "... 6 older runs not shown" in listing.stdout
    assert len(clean(run_cli("runs", "--all")).stdout.splitlines()) == 57

    pruned = clean(run_cli("runs", "prune", "--keep", "0"))
    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 55 finished runs; kept 1" in pruned.stdout
    assert [p.name for p in runs_dir(isolated_env).iterdir()] == [live_id]
    bad = clean(run_cli("runs", "prune", "--older-than", "soon"))
    assert bad.returncode == 2 and "expected an age such as 30m" in bad.stderr
