"""Real runs: torchrun (or accelerate) with 2 CPU gloo ranks under the trainwiz supervisor."""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys

import pytest

from tests.launchers.helpers import (
    RUN_KEYS,
    TRAIN_ACC,
    TRAIN_DDP,
    alive,
    launched_dir,
    run_pids,
    runs_json,
    status_of,
    wait_running,
    wait_all_gone,
    wait_state,
    write_profile,
)

pytestmark = pytest.mark.slow


def test_success_with_busy_port_plain_live_view_logs_and_json(run_cli, tmp_path):
    busy = socket.socket()
    busy.bind(("", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        prof = write_profile(tmp_path, main_port=port)
        out = run_cli("launch", "--profile", str(prof), TRAIN_DDP, "--", "--steps", "6",
                      "--sleep", "0.4")
    finally:
        busy.close()
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"port {port} is in use" in out.stderr
    assert "succeeded" in out.stdout and "rank 1: exited with code 0" in out.stdout
    assert "memory (host RSS): rank0" in out.stdout
    assert "progress: step 6/6 · loss" in out.stdout  # from the example's metrics.jsonl

    [run] = runs_json(run_cli)
    assert set(run) == RUN_KEYS
    assert run["state"] == "succeeded" and run["failure"] is None
    assert run["profile"] == "cpu2" and run["script"] == TRAIN_DDP
    assert [(r["rank"], r["exit_code"]) for r in run["ranks"]] == [(0, 0), (1, 0)]
    assert run["started_at"] and run["ended_at"]

    run_dir = launched_dir(out.stdout)
    assert str(run_dir) == run["run_dir"]
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    import json

    cmd = json.loads((run_dir / "command.json").read_text())
    used = int(cmd["argv"][cmd["argv"].index("--master-port") + 1])
    assert used != port
    assert (run_dir / "profile.yaml").is_file()
    assert (run_dir / "samples.jsonl").read_text().strip()
    wait_all_gone(run_pids(status_of(run_dir)))

    logs = run_cli("logs", run["id"][:10], "--rank", "1")
    assert logs.returncode == 0, logs.stderr
    assert "rank 1 step 5 loss" in logs.stdout and "rank 0 step" not in logs.stdout


def test_failing_rank_is_named_and_the_other_rank_ended(run_cli, tmp_path):
    # A simulated GPU box: CUDA-less ranks fall back to gloo; GPU memory = the ranks' real RSS.
    prof = write_profile(tmp_path, device="cuda", gpu_ids=[0, 1], num_processes=None)
    out = run_cli("launch", "--detach", "--simulate", "2xH100-80GB", "--profile", str(prof),
                  TRAIN_DDP, "--", "--steps", "200", "--sleep", "0.2", "--fail-rank", "1",
                  "--fail-step", "8", "--fail-oom")
    assert out.returncode == 0, out.stderr
    run_dir = launched_dir(out.stdout)
    st = wait_state(run_dir, ("failed", "succeeded"))
    assert st["state"] == "failed"
    fail = st["failure"]
    # 1, or -15 when the launcher ends rank 1 while it is still exiting (slow under load)
    assert fail["rank"] == 1 and fail["exit_code"] in (1, -15) and fail["oom"] is True
    assert "OutOfMemoryError: CUDA out of memory" in fail["message"]
    assert "simulated on rank 1" in fail["message"]
    codes = {r["rank"]: r["exit_code"] for r in st["ranks"]}
    assert codes[1] == fail["exit_code"] and codes[0] not in (0, None)  # rank 0 was ended
    wait_all_gone(run_pids(st))
    samples = [line for line in (run_dir / "samples.jsonl").read_text().splitlines() if line]
    import json

    during = [json.loads(line) for line in samples]
    during = [x for x in during if len(x["ranks"]) == 2]
    assert during, "no memory sample while both ranks ran"
    gpus = during[-1]["gpus"]
    assert [g["index"] for g in gpus] == [0, 1]
    assert all(g["memory_used"] >= r["rss"] for g, r in zip(gpus, during[-1]["ranks"]))
    listing = run_cli("runs")
    assert "rank 1: OutOfMemoryError: CUDA out of memory" in " ".join(listing.stdout.split())
    assert "failed OOM" in listing.stdout  # the OOM flag, in the state column


def test_supervisor_sigkill_leaves_no_rank_alive(run_cli, tmp_path):
    prof = write_profile(tmp_path)
    out = run_cli("launch", "-d", "--profile", str(prof), TRAIN_DDP, "--", "--steps", "1000",
                  "--sleep", "0.2")
    assert out.returncode == 0, out.stderr
    run_dir = launched_dir(out.stdout)
    st = wait_running(run_dir)
    pids = [r["pid"] for r in st["ranks"]] + [st["launcher_pid"]]
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    wait_all_gone(pids, 30)
    [run] = runs_json(run_cli)
    assert run["state"] == "failed"


def test_killed_launcher_leaves_no_orphaned_rank(run_cli, tmp_path):
    prof = write_profile(tmp_path)
    out = run_cli("launch", "-d", "--profile", str(prof), TRAIN_DDP, "--", "--steps", "1000",
                  "--sleep", "0.2")
    run_dir = launched_dir(out.stdout)
    st = wait_running(run_dir)
    os.kill(st["launcher_pid"], signal.SIGKILL)  # torchrun dies without ending its ranks
    final = wait_state(run_dir, ("failed",), timeout=30)
    assert final["failure"]["rank"] is None
    assert final["failure"]["message"].startswith("the launcher was killed by SIGKILL")
    wait_all_gone(run_pids(st))


def test_stop_leaves_nothing_alive(run_cli, tmp_path):
    prof = write_profile(tmp_path)
    out = run_cli("launch", "-d", "--profile", str(prof), TRAIN_DDP, "--", "--steps", "1000",
                  "--sleep", "0.2")
    run_dir = launched_dir(out.stdout)
    st = wait_running(run_dir)
    stop = run_cli("stop", st["id"][:12])
    assert stop.returncode == 0, stop.stderr
    assert "stopped" in stop.stdout
    final = status_of(run_dir)
    assert final["state"] == "stopped" and final["ended_at"]
    assert not [p for p in run_pids(st) if alive(p)]  # `stop` returns once all are gone
    again = run_cli("stop", "last")
    assert again.returncode == 0 and "already stopped" in again.stdout


def test_run_outlives_its_terminal_and_accelerator_gets_the_profile(isolated_env, tmp_path):
    """Launched from a terminal that is then killed (SSH drop); torchrun passes the profile's
    mixed precision to a script using Accelerator()."""
    pexpect = pytest.importorskip("pexpect")
    prof = write_profile(tmp_path, mixed_precision="bf16")
    child = pexpect.spawn(sys.executable, ["-m", "trainwiz", "launch", "--plain", "--profile",
                                           str(prof), TRAIN_ACC, "--", "--steps", "12",
                                           "--sleep", "0.4"],
                          env=isolated_env, cwd=str(tmp_path), encoding="utf-8", timeout=60)
    child.expect(r"launched run \S+ \((\S+)\)")
    run_dir = child.match.group(1)
    child.expect("running")
    child.close(force=True)  # the terminal goes away: SIGHUP, then SIGKILL
    assert not child.isalive()
    st = wait_state(run_dir, ("succeeded", "failed", "stopped"), timeout=120)
    assert st["state"] == "succeeded", st
    from trainwiz.launchers.rundir import tail_log

    log = "\n".join(tail_log(run_dir, 0, 50, stream="stdout"))
    assert "rank 0 step 11 loss" in log
    assert "MULTI_CPU, 2 processes, mixed_precision=bf16" in log


def test_accelerate_launcher(run_cli, tmp_path):
    prof = write_profile(tmp_path, launcher="accelerate")
    out = run_cli("launch", "-d", "--profile", str(prof), TRAIN_ACC, "--", "--steps", "3")
    assert out.returncode == 0, out.stderr
    run_dir = launched_dir(out.stdout)
    st = wait_state(run_dir, ("succeeded", "failed"))
    assert st["state"] == "succeeded", (run_dir / "launcher.log").read_text()[-2000:]
    import json

    argv = json.loads((run_dir / "command.json").read_text())["argv"]
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert (run_dir / "accelerate_config.yaml").is_file()
    logs = run_cli("logs", st["id"], "--rank", "1")
    assert "rank 1 step 2 loss" in logs.stdout and "2 processes" in logs.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _two_nodes(run_cli, tmp_path, port: int):
    """Launch machine 0 and machine 1 of a 2-machine profile on loopback; wait for both."""
    common = dict(num_processes=1, num_machines=2, main_address="127.0.0.1", main_port=port)
    node0 = write_profile(tmp_path, f"node0-{port}", machine_rank=0, **common)
    node1 = write_profile(tmp_path, f"node1-{port}", machine_rank=1, **common)
    a = run_cli("launch", "-d", "--profile", str(node0), TRAIN_DDP, "--", "--steps", "3")
    b = run_cli("launch", "-d", "--profile", str(node1), TRAIN_DDP, "--", "--steps", "3")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    dirs = [launched_dir(x.stdout) for x in (a, b)]
    try:
        return dirs, [wait_state(d, ("succeeded", "failed"), timeout=120) for d in dirs]
    except AssertionError:
        for d in dirs:  # leave nothing behind before the caller decides
            run_cli("stop", d.name)
        return dirs, None


def test_multi_node_on_loopback(run_cli, tmp_path):
    port = _free_port()
    common = dict(num_processes=1, num_machines=2, main_address="127.0.0.1", main_port=port)
    node0 = write_profile(tmp_path, "node0", machine_rank=0, **common)
    printed = run_cli("launch", "--print-commands", "--profile", str(node0), TRAIN_DDP)
    assert printed.returncode == 0, printed.stderr
    lines = [ln for ln in printed.stdout.splitlines() if not ln.startswith("#")]
    assert len(lines) == 2 and all(f"--rdzv-endpoint 127.0.0.1:{port}" in ln for ln in lines)
    assert "--node-rank 1" in lines[1]
    assert runs_json(run_cli) == []  # printing launches nothing

    # The rendezvous port is chosen here, before the agents bind it; on a busy CI machine a
    # parallel test can take it in between and the agents then wait on a stranger. That race
    # belongs to the test, not to trainwiz, so a hung attempt is retried once on a new port.
    dirs, sts = _two_nodes(run_cli, tmp_path, _free_port())
    if sts is None:
        logs = [(d / "launcher.log").read_text()[-2000:] for d in dirs if (d / "launcher.log").exists()]
        dirs, sts = _two_nodes(run_cli, tmp_path, _free_port())
        assert sts is not None, ("both attempts hung; first attempt's launcher logs:", logs)
    assert [s["state"] for s in sts] == ["succeeded", "succeeded"], [
        (s["failure"], (d / "launcher.log").read_text()[-3000:]) for s, d in zip(sts, dirs)]
    assert sorted(r["rank"] for s in sts for r in s["ranks"]) == [0, 1]
