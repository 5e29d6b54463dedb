"""Real Slurm jobs through `trainwiz launch` / `runs` / `logs` / `stop` (see conftest.py).

The cluster is two slurmd on this host (node1, node2); the ranks are CPU (gloo) ranks of
examples/train_ddp.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.launchers.helpers import TRAIN_ACC, TRAIN_DDP, wait_for

pytestmark = [pytest.mark.xdist_group("slurm"), pytest.mark.slow]


def write_profile(folder: Path, name: str, **slurm) -> Path:
    data = {"version": 1, "strategy": "ddp", "device": "cpu", "num_processes": 2,
            "python": sys.executable, "scheduler": "slurm",
            "slurm": {"partition": "debug", "nodes": 1, **slurm}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def cli(slurm_cluster, run_cli):
    """`trainwiz ...` with the test cluster's SLURM_CONF (the session fixture runs first)."""

    def run(*args, **kw):
        env = dict(kw.pop("env", None) or {}, SLURM_CONF=slurm_cluster["SLURM_CONF"])
        return run_cli(*args, env=env, **kw)

    return run


def submitted(out) -> tuple[str, Path, str]:
    """(run id, run dir, job id) from `trainwiz launch`'s output."""
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        if line.startswith("submitted Slurm job "):
            words = line.split()
            return words[6], Path(line.split("(", 1)[1].rstrip(")")), words[3]
    raise AssertionError(f"no 'submitted Slurm job' line in {out.stdout!r}")


def run_record(cli, run_id: str) -> dict:
    out = cli("runs", "--json")
    assert out.returncode == 0, out.stderr
    runs = {r["id"]: r for r in json.loads(out.stdout)}
    return runs[run_id]


def squeue(slurm_cluster, job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                          text=True, env=dict(os.environ, **{"SLURM_CONF":
                                                             slurm_cluster["SLURM_CONF"]})).stdout


def run_processes(run_id: str) -> list[psutil.Process]:
    """Processes of this run anywhere on the machine (every node's supervisor marks them with
    its own id, <node>-<run id>)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (proc.environ().get("TRAINWIZ_RUN_ID") or "").endswith(f"-{run_id}"):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def record(run_id: str) -> dict:
    """The run's `runs --json` record, read in this process (cheap enough to poll; the 2-core
    CI machine is busy running the jobs)."""
    from trainwiz.launchers.rundir import read_status, resolve_run

    return read_status(resolve_run(run_id)).to_json()


def follow(cli, run_id: str, timeout: float = 150) -> list[str]:
    """Slurm states seen until the job ends (consecutive duplicates dropped); the end is then
    checked in `trainwiz runs --json` itself."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = record(run_id)
        state = rec["slurm"]["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if rec["state"] in ("succeeded", "failed", "stopped"):
            assert run_record(cli, run_id)["slurm"]["state"] == state
            return seen
        time.sleep(0.5)
    raise AssertionError(f"job did not end in {timeout}s; states seen: {seen}")


def test_cpu_job_is_submitted_followed_and_completes(cli, tmp_path, slurm_cluster):
    prof = write_profile(tmp_path, "cpu-slurm")
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach", "--",
              "--steps", "12", "--sleep", "0.3")
    run_id, run_dir, job_id = submitted(out)
    assert (run_dir / "job.sbatch").is_file()
    seen = follow(cli, run_id)
    assert "RUNNING" in seen and seen[-1] == "COMPLETED", seen
    rec = run_record(cli, run_id)
    assert rec["state"] == "succeeded" and rec["failure"] is None
    assert rec["slurm"]["exit_code"] == "0:0" and rec["slurm"]["nodes"] == ["node1"]
    assert sorted(r["rank"] for r in rec["ranks"]) == [0, 1]
    for rank in (0, 1):
        logs = cli("logs", run_id, "--rank", str(rank))
        assert logs.returncode == 0, logs.stderr
        assert f"rank {rank} step 11 loss" in logs.stdout and f"rank {rank} done" in logs.stdout
    assert not squeue(slurm_cluster, job_id).strip()


def test_two_node_job_joins_ranks_on_both_nodes(cli, tmp_path):
    prof = write_profile(tmp_path, "two-nodes", nodes=2)
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach", "--", "--steps", "4")
    run_id, run_dir, _ = submitted(out)
    assert follow(cli, run_id)[-1] == "COMPLETED"
    rec = run_record(cli, run_id)
    assert rec["state"] == "succeeded" and rec["slurm"]["nodes"] == ["node1", "node2"]
    assert sorted(r["rank"] for r in rec["ranks"]) == [0, 1, 2, 3]
    per_node = {}
    for node in ("node1", "node2"):
        st = json.loads((run_dir / "nodes" / f"{node}-{run_id}" / "status.json").read_text())
        per_node[node] = sorted(r["rank"] for r in st["ranks"])
    # one rendezvous: 4 distinct global ranks, two on each node
    assert sorted(per_node["node1"] + per_node["node2"]) == [0, 1, 2, 3]
    assert len(per_node["node1"]) == len(per_node["node2"]) == 2
    for rank in range(4):
        logs = cli("logs", run_id, "--rank", str(rank))
        assert f"rank {rank} done" in logs.stdout, (rank, logs.stdout, logs.stderr)
        node = next(n for n, ranks in per_node.items() if rank in ranks)
        assert f"rank {rank} ran on {node}" in logs.stderr


def test_failing_rank_is_named_with_its_node(cli, tmp_path):
    shared = tmp_path / "shared-runs"  # the profile chooses where run directories go
    prof = write_profile(tmp_path, "fails", run_dir=str(shared))
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach", "--",
              "--steps", "50", "--fail-rank", "1", "--fail-step", "1")
    run_id, run_dir, _ = submitted(out)
    assert run_dir == shared / run_id
    assert f"run directories go to {shared} (the profile's slurm.run_dir)" in out.stderr
    assert follow(cli, run_id)[-1] == "FAILED"
    rec = run_record(cli, run_id)
    assert rec["state"] == "failed"
    assert rec["failure"]["rank"] == 1 and rec["failure"]["node"] == "node1"
    assert "rank 1 failed on purpose" in rec["failure"]["message"]
    table = cli("runs")
    assert "rank 1 on node1: RuntimeError: rank 1 failed on purpose" in table.stdout


def test_stop_cancels_the_job_and_leaves_no_process(cli, tmp_path, slurm_cluster):
    prof = write_profile(tmp_path, "long")
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach", "--",
              "--steps", "100000", "--sleep", "0.2")
    run_id, run_dir, job_id = submitted(out)
    wait_for(lambda: len(record(run_id)["ranks"]) == 2
             and record(run_id)["slurm"]["state"] == "RUNNING", 120, interval=0.5,
             what="2 ranks running in Slurm")
    assert len(run_processes(run_id)) >= 3  # supervisor, torchrun, 2 ranks
    t0 = time.monotonic()
    stop = cli("stop", run_id)
    assert stop.returncode == 0, stop.stderr
    assert f"run {run_id} stopped" in stop.stdout
    assert time.monotonic() - t0 < 60
    assert not squeue(slurm_cluster, job_id).strip()  # squeue is empty once stop returns
    rec = run_record(cli, run_id)
    assert rec["state"] == "stopped" and rec["slurm"]["state"] == "CANCELLED"
    assert run_processes(run_id) == []


def test_pending_job_shows_its_reason(cli, tmp_path, slurm_cluster):
    prof = write_profile(tmp_path, "pends", partition="closed")
    run_id, _, job_id = submitted(cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach"))
    wait_for(lambda: record(run_id)["slurm"]["reason"], 30, interval=0.5,
             what="a pending reason")
    rec = run_record(cli, run_id)
    assert rec["slurm"]["state"] == "PENDING" and rec["slurm"]["reason"] == "PartitionDown"
    assert rec["state"] == "starting"
    assert "PENDING (PartitionDown)" in cli("runs").stdout
    stop = cli("stop", run_id)
    assert stop.returncode == 0 and f"run {run_id} stopped" in stop.stdout
    assert not squeue(slurm_cluster, job_id).strip()


def _no_runs(cli) -> bool:
    return json.loads(cli("runs", "--json").stdout) == []


def test_unknown_partition_is_slurms_own_one_line_and_leaves_no_run(cli, tmp_path):
    prof = write_profile(tmp_path, "nowhere", partition="nosuch")
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Invalid partition name specified" in lines[0], out.stderr
    assert _no_runs(cli)


def test_sbatch_refusing_the_job_is_one_line_and_leaves_no_run(cli, tmp_path):
    # the nodes have 2000 MiB (RealMemory): sbatch refuses at once
    prof = write_profile(tmp_path, "too-big", sbatch_args=["--mem=100000"])
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == ["trainwiz: sbatch refused the job: sbatch: error: Batch job submission "
                     "failed: Requested node configuration is not available"], out.stderr
    assert _no_runs(cli)


def test_no_sbatch_on_path_is_one_line(cli, tmp_path):
    prof = write_profile(tmp_path, "noslurm")
    bare = tmp_path / "bin"
    bare.mkdir()
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--detach", env={"PATH": str(bare)})
    assert out.returncode == 2
    assert out.stderr.strip() == ("trainwiz: no Slurm on this machine: `sbatch` is not on PATH "
                                  "(run trainwiz on the cluster's login node, or install the "
                                  "Slurm client)")
    assert _no_runs(cli)
    gpus = cli("gpus", "--slurm", "--json", env={"PATH": str(bare)})
    assert gpus.returncode == 0 and json.loads(gpus.stdout) == []
    assert len(gpus.stderr.strip().splitlines()) == 1


def test_gpus_slurm_lists_the_partitions_as_hardware_to_plan_for(cli):
    out = cli("gpus", "--slurm", "--json")
    assert out.returncode == 0, out.stderr
    parts = {p["partition"]: p for p in json.loads(out.stdout)}
    assert set(parts) == {"debug", "closed"} and parts["debug"]["default"] is True
    debug = parts["debug"]
    assert [n["name"] for n in debug["node_list"]] == ["node1", "node2"]
    assert all(n["cpus"] == 2 and n["memory"] == 2000 * 2**20 for n in debug["node_list"])
    assert debug["states"] == {"idle": 2}
    # sinfo's gpu:h100:2 is two H100s per node: 80 GB cards, trainwiz's H100-80GB preset
    assert debug["gpus_per_node"] == 2 and debug["gpu_type"] == "h100"
    assert debug["gpu_preset"] == "H100-80GB" and debug["gpu_memory"] == 81559 * 2**20
    table = cli("gpus", "--slurm").stdout
    assert "debug*" in table and "2 x h100" in table
    assert "plan for debug (2 x 2 GPUs): trainwiz estimate MODEL --num-gpus 4 --gpu-memory " \
        "81559MiB" in " ".join(table.split())


def test_print_commands_plans_against_the_partitions_gpus(cli, tmp_path):
    prof = tmp_path / "llama.yaml"
    prof.write_text(yaml.safe_dump({
        "strategy": "ddp", "mixed_precision": "bf16", "python": sys.executable,
        "scheduler": "slurm", "slurm": {"partition": "debug", "nodes": 2},
        "estimate": {"model": "llama-3-8b"}}))
    out = cli("launch", "--profile", str(prof), TRAIN_DDP, "--print-commands")
    assert out.returncode == 0, out.stderr
    # one rank per GPU of the partition's nodes, the estimate against an H100's memory
    assert "#SBATCH --gpus-per-node=2" in out.stdout and "--nproc-per-node 2" in out.stdout
    assert "one rank per GPU: 2 GPUs per node in partition debug" in out.stderr
    assert re.search(r"llama-3-8b needs \d+\.\d GiB per GPU but GPU 0 has only 79\.6 GiB",
                     out.stderr), out.stderr
    assert "a node of partition debug has 2.0 GiB of RAM" in out.stderr
    assert _no_runs(cli)


def test_exported_accelerate_script_submitted_by_hand_runs_on_two_nodes(cli, tmp_path,
                                                                        slurm_cluster):
    """`profiles export --format sbatch`, then plain `sbatch`: accelerate on both nodes (each
    with its machine rank), and the job shows up in `trainwiz runs` as slurm-<job id>."""
    prof = write_profile(tmp_path, "byhand", nodes=2)
    data = yaml.safe_load(prof.read_text())
    data.update(launcher="accelerate", script=TRAIN_ACC, script_args=["--steps", "2"])
    prof.write_text(yaml.safe_dump(data))
    out = cli("profiles", "export", str(prof), "--format", "sbatch", "-o", str(tmp_path / "job.sh"))
    assert out.returncode == 0, out.stderr
    sub = subprocess.run(["sbatch", "--parsable", str(tmp_path / "job.sh")], capture_output=True,
                         text=True, env=dict(os.environ, SLURM_CONF=slurm_cluster["SLURM_CONF"]))
    assert sub.returncode == 0, sub.stderr
    run_id = f"slurm-{sub.stdout.strip()}"
    runs = tmp_path / "home" / "state" / "trainwiz" / "runs"
    wait_for(lambda: (runs / run_id / "status.json").is_file(), 60, interval=0.5,
             what="the hand-submitted job's run directory")
    assert follow(cli, run_id)[-1] == "COMPLETED"
    rec = run_record(cli, run_id)
    assert rec["profile"] == "byhand" and rec["slurm"]["nodes"] == ["node1", "node2"]
    logs = cli("logs", run_id, "--rank", "3").stdout
    assert "rank 3 done" in logs and "4 processes" in logs


def test_a_job_slurm_has_forgotten_reads_from_the_nodes_status_files(cli, tmp_path):
    """No accounting here (accounting_storage/none): scontrol does not know the job, sacct
    refuses; the run's state then comes from what its node supervisors wrote."""
    from trainwiz.launchers.slurm_jobs import query_job

    assert query_job("999999") is None  # scontrol: invalid job id; sacct: accounting disabled
    runs = tmp_path / "home" / "state" / "trainwiz" / "runs"
    run = runs / "20260101-000000-abcd"
    node = run / "nodes" / f"node1-{run.name}"
    node.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"id": run.name, "scheduler": "slurm"}))
    (run / "slurm.json").write_text(json.dumps({"job_id": "999999"}))
    (node / "command.json").write_text(json.dumps({"node": "node1", "node_id": 0}))
    (node / "status.json").write_text(json.dumps({
        "id": node.name, "state": "succeeded", "ended_at": "2026-01-01T00:01:00+00:00",
        "ranks": [{"rank": 0, "exit_code": 0}, {"rank": 1, "exit_code": 0}]}))
    rec = run_record(cli, run.name)
    assert rec["state"] == "succeeded" and rec["slurm"]["state"] == "unknown"
    assert rec["ended_at"] == "2026-01-01T00:01:00+00:00" and len(rec["ranks"]) == 2
