"""Checks before anything starts: each failure is one clear message, exit 2, no run directory."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from tests.launchers.helpers import TRAIN_DDP, write_profile


def _no_runs(isolated_env) -> bool:
    runs = os.path.join(isolated_env["XDG_STATE_HOME"], "trainwiz", "runs")
    return not os.path.isdir(runs) or not os.listdir(runs)


def test_missing_script_launches_nothing(run_cli, tmp_path, isolated_env):
    prof = write_profile(tmp_path)
    out = run_cli("launch", "--profile", str(prof), "nope/train.py")
    assert out.returncode == 2
    assert out.stderr.strip() == "trainwiz: nope/train.py: no such training script"
    assert _no_runs(isolated_env)


def test_bad_profile_launches_nothing(run_cli, tmp_path, isolated_env):
    prof = write_profile(tmp_path, strategy="zero3")
    out = run_cli("launch", "--profile", str(prof), TRAIN_DDP)
    assert out.returncode == 2
    assert "strategy" in out.stderr and "fsdp" in out.stderr and str(prof.name) in out.stderr
    assert _no_runs(isolated_env)
    missing = run_cli("launch", "--profile", "no-such-profile", TRAIN_DDP)
    assert missing.returncode == 2 and "no-such-profile" in missing.stderr
    assert _no_runs(isolated_env)


def test_interpreter_without_torch_is_refused(run_cli, tmp_path, isolated_env):
    fake = tmp_path / "python-no-torch"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # -S: no site-packages
    fake.chmod(0o755)
    prof = write_profile(tmp_path, python=str(fake))
    out = run_cli("launch", "--profile", str(prof), TRAIN_DDP)
    assert out.returncode == 2
    assert "has no torch" in out.stderr and "python" in out.stderr
    gone = write_profile(tmp_path, "gone", python=str(tmp_path / "missing" / "python"))
    out = run_cli("launch", "--profile", str(gone), TRAIN_DDP)
    assert out.returncode == 2 and "not found" in out.stderr
    assert _no_runs(isolated_env)


def test_gpu_profile_without_gpus_is_refused(run_cli, tmp_path, isolated_env):
    from tests.hardware.fake_nvml import NO_DRIVER, fake_nvml_env

    prof = write_profile(tmp_path, device="cuda", num_processes=None)
    # no NVIDIA driver, also on a GPU box (where this would otherwise start a real run)
    out = run_cli("launch", "--profile", str(prof), TRAIN_DDP,
                  env=fake_nvml_env(tmp_path, NO_DRIVER))
    assert out.returncode == 2
    assert "no GPU" in out.stderr and "device: cpu" in out.stderr
    ids = write_profile(tmp_path, "ids", device="cuda", gpu_ids=[0, 5], num_processes=None)
    out = run_cli("launch", "--simulate", "2xH100-80GB", "--profile", str(ids), TRAIN_DDP)
    assert out.returncode == 2 and "GPU 5" in out.stderr
    assert _no_runs(isolated_env)


def test_estimate_that_does_not_fit_free_memory_needs_confirmation(run_cli, tmp_path, isolated_env):
    pytest.importorskip("trainwiz.estimator.memory")
    prof = write_profile(tmp_path, device="cuda", num_processes=None,
                         estimate={"model": "llama-3-8b", "batch_size": 4, "seq_len": 2048})
    out = run_cli("launch", "--simulate", "2x4090", "--profile", str(prof), TRAIN_DDP)
    assert out.returncode == 2
    assert "llama-3-8b needs" in out.stderr and "free" in out.stderr and "--yes" in out.stderr
    assert _no_runs(isolated_env)
    shown = run_cli("launch", "--print-commands", "--simulate", "2x4090", "--profile", str(prof),
                    TRAIN_DDP)  # printing only: never blocked by the fit check
    assert shown.returncode == 0 and "does not fit" not in shown.stdout


def test_multi_node_main_port_in_use_is_refused(run_cli, tmp_path, isolated_env):
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        prof = write_profile(tmp_path, num_processes=1, num_machines=2, machine_rank=0,
                             main_address="127.0.0.1", main_port=port)
        out = run_cli("launch", "--profile", str(prof), TRAIN_DDP)
    assert out.returncode == 2
    assert f"port {port} is already in use" in out.stderr
    assert _no_runs(isolated_env)


def test_unknown_run_is_a_clear_error(run_cli):
    for cmd in (["attach", "nope"], ["stop", "nope"], ["logs", "nope"]):
        out = run_cli(*cmd)
        assert out.returncode == 2 and "no run 'nope'" in out.stderr
    out = run_cli("runs", "--json")
    assert out.returncode == 0 and out.stdout.strip() == "[]"


def test_a_cpu_plan_that_would_swamp_this_machine_is_warned_about(run_cli, tmp_path):
    import psutil

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    ram_gib = psutil.virtual_memory().total / 1024 ** 3
    prof = write_profile(tmp_path, num_processes=cores + 1,
                         estimate={"model": "llama-3-70b", "batch_size": 1, "seq_len": 512})
    out = run_cli("launch", "--print-commands", "--profile", str(prof), TRAIN_DDP)
    assert out.returncode == 0, out.stderr
    assert (f"# warning: {cores + 1} CPU ranks but {cores} CPU cores usable here"
            in out.stdout)
    assert "CPU rank(s) × " in out.stdout and f"the estimate's peak per rank)) but this " \
        f"machine has {ram_gib:.1f} GiB of RAM" in out.stdout

    fits = write_profile(tmp_path, "small", num_processes=1)
    quiet = run_cli("launch", "--print-commands", "--profile", str(fits), TRAIN_DDP)
    assert quiet.returncode == 0 and "warning" not in quiet.stdout


def test_a_cpu_plan_needing_more_host_memory_than_there_is_is_not_launched_unasked(
        run_cli, tmp_path, isolated_env):
    """Host memory is judged as GPU memory is: more than the machine has is a question (exit 2
    with --yes named), never a passing check with a warning beside it."""
    prof = write_profile(tmp_path, num_processes=2,
                         estimate={"model": "llama-3-70b", "batch_size": 1, "seq_len": 512})
    out = run_cli("launch", "--profile", str(prof), TRAIN_DDP)
    assert out.returncode == 2, out.stdout
    assert "of host memory needed" in out.stderr and "--yes" in out.stderr
    assert _no_runs(isolated_env)
