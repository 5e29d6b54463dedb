"""The sbatch script and the Slurm parsers, without a cluster (pure functions)."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from trainwiz.hardware.slurm import parse_gres, parse_sinfo, partition_plan
from trainwiz.launchers.slurm import build_sbatch_script
from trainwiz.launchers.slurm_jobs import parse_sacct, parse_scontrol_job
from trainwiz.launchers.slurm_node import node_argv
from trainwiz.profiles import ProfileError, profile_from_dict

RUN = "/home/ana/.local/state/trainwiz/runs/20260101-000000-abcd"


def slurm_profile(**kw):
    data = {"strategy": "fsdp", "num_processes": 8, "mixed_precision": "bf16",
            "python": "/home/ana/venv/bin/python", "scheduler": "slurm",
            "slurm": {"partition": "gpu", "nodes": 4, "time": "4:00:00", "account": "proj",
                      "sbatch_args": ["--exclusive"]}}
    data.update(kw)
    return profile_from_dict(data, source="p.yaml", name="fsdp-32")


def script_4x8(**kw) -> str:
    return build_sbatch_script(slurm_profile(**kw), "/home/ana/train.py", ["--lr", "1e-4"],
                               run_dir=RUN, run_id="20260101-000000-abcd",
                               python="/home/ana/venv/bin/python", nproc=8, gpus_per_node=8,
                               trainwiz_python="/opt/tw/bin/python", trainwiz_root="/opt/tw/src")


def test_four_nodes_of_eight_gpus_read_as_a_slurm_user_would_write_them():
    text = script_4x8()
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [ln.split("#", 2)[1].split()[1] for ln in lines if ln.startswith("#SBATCH")]
    assert sbatch == ["--job-name=trainwiz-fsdp-32", "--nodes=4", "--ntasks-per-node=1",
                      "--partition=gpu", "--gpus-per-node=8", "--time=4:00:00",
                      "--account=proj", f"--output={RUN}/slurm-%j.out", "--exclusive"]
    # every #SBATCH line after the first few says why, and the body is explained
    assert sum(1 for ln in lines if ln.startswith("# ")) >= 10
    # the rendezvous: the job's first node, found when the job runs, the job id as its id
    assert 'MAIN_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in lines
    assert 'RDZV_ID="trainwiz-$SLURM_JOB_ID"' in lines
    body = " ".join(ln.rstrip("\\").strip() for ln in lines if not ln.startswith("#"))
    assert ("-m torch.distributed.run --nnodes 4 --nproc-per-node 8" in body)
    assert ('--rdzv-backend c10d --rdzv-endpoint "$MAIN_ADDR:$RDZV_PORT" --rdzv-id "$RDZV_ID"'
            in body)
    assert "srun --nodes=4 --ntasks-per-node=1" in body
    assert "--node-rank" not in body and "--master-addr" not in body
    assert body.rstrip().endswith("/home/ana/train.py --lr 1e-4")
    # the plan's environment for every rank
    assert "export ACCELERATE_MIXED_PRECISION=bf16" in lines
    assert "export FSDP_VERSION=2" in lines
    # no host name of this machine (nor localhost) anywhere
    for host in {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"}:
        assert host not in text


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash checks the script's syntax")
def test_the_script_is_valid_bash():
    out = subprocess.run(["bash", "-n"], input=script_4x8(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_exported_script_makes_its_run_directory_when_the_job_runs():
    text = build_sbatch_script(slurm_profile(), "/home/ana/train.py", [], run_dir="", run_id="",
                               python="python3", nproc=8, gpus_per_node=8,
                               trainwiz_python="/opt/tw/bin/python", trainwiz_root="/opt/tw/src",
                               runs_folder="/home/ana/runs")
    assert "RUN_DIR=/home/ana/runs/slurm-$SLURM_JOB_ID" in text.splitlines()
    assert "#SBATCH --output=/home/ana/runs/slurm-%j.out" in text


def test_each_node_writes_its_own_logs_and_accelerate_gets_its_machine_rank(tmp_path):
    argv = ["python", "-m", "accelerate.commands.launch", "--machine_rank", "0",
            "--log_dir", "/run/torchrun", "train.py", "--log_dir", "mine"]
    out = node_argv(argv, tmp_path / "nodes" / "node2", 1)
    assert out[3:9] == ["--rdzv_conf", "is_host=false", "--machine_rank", "1", "--log_dir",
                        str(tmp_path / "nodes/node2/torchrun")]
    assert out[-2:] == ["--log_dir", "mine"]  # the script's own arguments are the script's
    first = node_argv(["python", "-m", "torch.distributed.run", "--log-dir", "x", "t.py"],
                      tmp_path / "nodes" / "node1", 0)
    assert first[3:5] == ["--rdzv-conf", "is_host=true"]


def test_profile_slurm_section_is_validated_with_file_key_and_allowed_values():
    with pytest.raises(ProfileError) as err:
        profile_from_dict({"scheduler": "slurm", "num_machines": 2, "main_address": "n1",
                           "slurm": {"nodes": 0, "time": "ten hours", "partiton": "gpu",
                                     "sbatch_args": ["exclusive"]}},
                          source="p.yaml", name="p")
    text = str(err.value)
    assert "key 'slurm.nodes' must be from 1 to 4096, not 0" in text
    assert "key 'slurm.time': 'ten hours' is not a Slurm time limit" in text
    assert "unknown key 'slurm.partiton' (did you mean 'partition'?)" in text
    assert "key 'slurm.sbatch_args': 'exclusive' is not an sbatch option" in text
    assert "key 'num_machines': with scheduler slurm Slurm chooses the machines" in text
    with pytest.raises(ProfileError, match="set scheduler: slurm or remove the slurm section"):
        profile_from_dict({"slurm": {"nodes": 2}}, source="p.yaml", name="p")
    with pytest.raises(ProfileError, match="allowed: local, slurm"):
        profile_from_dict({"scheduler": "pbs"}, source="p.yaml", name="p")


def test_slurm_nodes_count_as_machines_for_the_world_size():
    p = slurm_profile()
    assert p.machines == 4 and p.world_size == 32


def test_sinfo_partitions_with_gpu_gres():
    text = ("gpu-a|gpu*|idle|64|515000|gpu:h100:8(S:0-1)\n"
            "gpu-b|gpu*|mixed|64|515000|gpu:h100:8(S:0-1),mps:400\n"
            "gpu-c|gpu*|down*|64|515000|gpu:h100:8(S:0-1)\n"
            "old1|old|drained|32|257000|gpu:a100:4\n"
            "cpu1|cpu|allocated|128|1000000|(null)\n")
    parts = {p.name: p for p in parse_sinfo(text)}
    gpu = parts["gpu"]
    assert gpu.default and len(gpu.nodes) == 3 and gpu.gpus_per_node == 8
    assert gpu.gpu_type == "h100" and gpu.states == {"idle": 1, "mixed": 1, "down*": 1}
    assert gpu.nodes[0].cpus == 64 and gpu.nodes[0].memory == 515000 * 2**20
    plan = partition_plan(gpu)
    assert plan.preset == "H100-80GB" and plan.gpu_memory == 81559 * 2**20
    assert plan.estimate_options(2) == ["--num-gpus", "16", "--gpu-memory", "81559MiB"]
    fields = plan.profile_fields(2)  # what the wizard's "plan for" writes into a profile
    assert fields == {"scheduler": "slurm", "slurm": {"partition": "gpu", "nodes": 2},
                      "num_processes": 8}
    assert profile_from_dict({"strategy": "ddp", **fields}, source="w", name="w").world_size == 16
    # "a100" is 40 or 80 GB: unknown, never guessed
    assert partition_plan(parts["old"]).gpu_memory is None
    assert parts["cpu"].gpus_per_node == 0
    assert parse_gres("gpu:4") == (4, None)
    assert parse_gres("gpu:tesla:2(S:0),gpu:k80:2(S:1)") == (4, "tesla")


def test_job_state_from_scontrol_and_sacct():
    info = parse_scontrol_job("JobId=42 JobName=trainwiz-p UserId=ana(1000) JobState=PENDING "
                              "Reason=Resources Dependency=(null) ExitCode=0:0 NodeList=(null)\n")
    assert (info.state, info.reason, info.nodelist, info.active) == ("PENDING", "Resources",
                                                                     None, True)
    done = parse_sacct("42|CANCELLED by 1000|0:15|node[01-04]|None\n", "42")
    assert (done.state, done.exit_code, done.nodelist, done.active) == (
        "CANCELLED", "0:15", "node[01-04]", False)
    assert parse_sacct("", "42") is None


def test_every_nodes_gpu_samples_are_merged_round_by_round(tmp_path):
    import json

    from trainwiz.launchers.rundir import read_samples

    (tmp_path / "slurm.json").write_text(json.dumps({"job_id": "7"}))
    for nid, node in enumerate(("gpu-a", "gpu-b")):
        d = tmp_path / "nodes" / f"{node}-r"
        d.mkdir(parents=True)
        (d / "status.json").write_text(json.dumps({"id": f"{node}-r"}))
        (d / "command.json").write_text(json.dumps({"node": node, "node_id": nid}))
        lines = [json.dumps({"t": 100.0 + 2 * k + nid, "ranks": [{"rank": 2 * nid, "rss": 1}],
                             "gpus": [{"index": i, "memory_used": 1000 * nid + 10 * k + i,
                                       "memory_total": 80} for i in range(2)]})
                 for k in range(3)]
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")
    samples = read_samples(tmp_path, last=2)
    assert len(samples) == 2
    newest = samples[-1]
    assert [(g.node, g.local_index, g.index, g.memory_used) for g in newest.gpus] \
        == [("gpu-a", 0, 0, 20), ("gpu-a", 1, 1, 21), ("gpu-b", 0, 2, 1020), ("gpu-b", 1, 3, 1021)]
    assert [(r.node, r.rank) for r in newest.ranks] == [("gpu-a", 0), ("gpu-b", 2)]
    assert newest.t == 105.0


def test_accelerate_on_every_node_with_its_config_in_the_script():
    import yaml

    prof = slurm_profile(launcher="accelerate", slurm={"nodes": 2})
    cfg = yaml.safe_dump({"num_machines": 2, "num_processes": 16})
    text = build_sbatch_script(prof, "/home/ana/train.py", [], run_dir=RUN, run_id="r",
                               python="/home/ana/venv/bin/python", nproc=8, gpus_per_node=8,
                               trainwiz_python="/opt/tw/bin/python", trainwiz_root="/opt/tw/src",
                               accelerate_config=cfg)
    body = " ".join(ln.rstrip("\\").strip() for ln in text.splitlines() if not ln.startswith("#"))
    assert "-m accelerate.commands.launch" in body
    assert '--config_file "$RUN_DIR/accelerate_config.yaml" --num_processes 16 --num_machines 2' \
        in body
    assert '--main_process_ip "$MAIN_ADDR" --main_process_port "$RDZV_PORT" --rdzv_backend c10d' \
        in body
    assert "cat > \"$RUN_DIR/accelerate_config.yaml\" <<'TRAINWIZ_EOF' num_machines: 2" in body
    assert "#SBATCH --partition" not in text  # none named: the cluster's default partition


@pytest.mark.parametrize("slurm_state, state, message, oom", [
    ("TIMEOUT", "failed", "the job reached its time limit (slurm.time)", False),
    ("OUT_OF_MEMORY", "failed", "Slurm ended the job: out of memory", True),
    ("NODE_FAIL", "failed", "a node of the job failed", False),
    ("CANCELLED", "stopped", None, False),
    ("COMPLETED", "succeeded", None, False),
])
def test_slurm_end_states_read_as_run_states(tmp_path, slurm_state, state, message, oom):
    """States Slurm reported last (kept in slurm.json; a finished job is not asked again)."""
    import json

    from trainwiz.launchers.rundir import read_status

    run = tmp_path / "20260101-000000-abcd"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"id": run.name, "state": "starting",
                                                 "scheduler": "slurm"}))
    (run / "slurm.json").write_text(json.dumps({
        "job_id": "42", "partition": "gpu", "nodes": ["gpu-a", "gpu-b"],
        "last": {"state": slurm_state, "reason": None, "nodelist": "gpu-[a-b]",
                 "exit_code": "0:9" if slurm_state != "COMPLETED" else "0:0",
                 "source": "sacct"}}))
    st = read_status(run).to_json()
    assert st["state"] == state and st["slurm"]["state"] == slurm_state
    assert st["slurm"]["nodes"] == ["gpu-a", "gpu-b"]
    if message:
        assert st["failure"]["message"] == message and st["failure"]["oom"] is oom
    elif state != "failed":
        assert st["failure"] is None


def test_a_failing_rank_is_named_with_its_node_over_a_peers_error(tmp_path):
    import json

    from trainwiz.launchers.rundir import read_status

    run = tmp_path / "r1"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"id": "r1", "scheduler": "slurm"}))
    (run / "slurm.json").write_text(json.dumps({"job_id": "7", "last": {
        "state": "FAILED", "reason": "NonZeroExitCode", "nodelist": "n[1-2]",
        "exit_code": "1:0", "source": "scontrol"}}))
    fails = {"n1": (0, "RuntimeError: Connection closed by peer", "2026-01-01T00:00:09+00:00"),
             "n2": (3, "ValueError: bad batch", "2026-01-01T00:00:05+00:00")}
    for nid, (node, (rank, msg, ended)) in enumerate(fails.items()):
        d = run / "nodes" / f"{node}-r1"
        d.mkdir(parents=True)
        (d / "command.json").write_text(json.dumps({"node": node, "node_id": nid}))
        (d / "status.json").write_text(json.dumps({
            "id": f"{node}-r1", "state": "failed", "ended_at": ended,
            "ranks": [{"rank": 2 * nid}, {"rank": 2 * nid + 1}],
            "failure": {"rank": rank, "exit_code": 1, "message": msg}}))
    st = read_status(run).to_json()
    assert st["failure"] == {"rank": 3, "exit_code": 1, "message": "ValueError: bad batch",
                             "oom": False, "node": "n2"}
    assert [r["rank"] for r in st["ranks"]] == [0, 1, 2, 3]


def test_a_run_kept_on_a_shared_path_is_listed_and_pruned_through_its_link(tmp_path, monkeypatch):
    import json

    from trainwiz.launchers.rundir import list_runs, prune_runs, runs_root

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    shared = tmp_path / "shared" / "20260101-000000-abcd"
    shared.mkdir(parents=True)
    (shared / "status.json").write_text(json.dumps({"id": shared.name, "scheduler": "slurm",
                                                    "started_at": "2026-01-01T00:00:00+00:00"}))
    (shared / "slurm.json").write_text(json.dumps({"job_id": "5", "last": {
        "state": "COMPLETED", "reason": None, "nodelist": "n1", "exit_code": "0:0",
        "source": "scontrol"}}))
    runs_root().mkdir(parents=True)
    (runs_root() / shared.name).symlink_to(shared)
    assert [(r.id, str(r.state)) for r in list_runs()] == [(shared.name, "succeeded")]
    removed, _ = prune_runs(keep=0)
    assert [r.id for r in removed] == [shared.name]
    assert not shared.exists() and not (runs_root() / shared.name).exists()


def test_a_batch_script_that_failed_before_any_node_ran_says_why(tmp_path):
    import json

    from trainwiz.launchers.rundir import read_status

    run = tmp_path / "r2"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"id": "r2", "scheduler": "slurm"}))
    (run / "slurm.json").write_text(json.dumps({"job_id": "8", "last": {
        "state": "FAILED", "reason": "NonZeroExitCode", "nodelist": "n1", "exit_code": "2:0",
        "source": "scontrol"}}))
    (run / "slurm-8.out").write_text(
        "slurmstepd: error: execve(): /home/ana/venv/bin/python: No such file or directory\n"
        "srun: error: n1: task 0: Exited with exit code 2\n")
    st = read_status(run).to_json()
    assert st["state"] == "failed"
    assert st["failure"]["message"] == ("the batch script failed: slurmstepd: error: execve(): "
                                        "/home/ana/venv/bin/python: No such file or directory")
    assert st["failure"]["exit_code"] == 2
