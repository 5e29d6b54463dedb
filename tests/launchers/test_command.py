"""Command building: the exact argv and environment, without starting anything."""

from __future__ import annotations

import sys

import pytest

from trainwiz.launchers.command import accelerate_env, build_all_nodes, build_command, launch_env
from trainwiz.profiles import FsdpOptions, Profile


def _cmd(profile, **kw):
    kw.setdefault("run_dir", "/runs/r1")
    kw.setdefault("run_id", "r1")
    kw.setdefault("port", 29555)
    return build_command(profile, "/src/train.py", ["--lr", "1e-4"], **kw)


def _opt(argv, flag):
    return argv[argv.index(flag) + 1]


def test_single_node_cpu_torchrun_command():
    p = Profile(name="cpu", device="cpu", num_processes=2, python="/venv/bin/python")
    cmd = _cmd(p)
    assert cmd.argv[:3] == ["/venv/bin/python", "-m", "torch.distributed.run"]
    assert _opt(cmd.argv, "--nproc-per-node") == "2"
    assert _opt(cmd.argv, "--nnodes") == "1"
    assert _opt(cmd.argv, "--master-addr") == "127.0.0.1"
    assert _opt(cmd.argv, "--master-port") == "29555"
    assert _opt(cmd.argv, "--log-dir") == "/runs/r1/torchrun"
    assert _opt(cmd.argv, "--redirects") == "3"
    assert "--rdzv-endpoint" not in cmd.argv
    assert cmd.argv[-3:] == ["/src/train.py", "--lr", "1e-4"]
    assert cmd.env["CUDA_VISIBLE_DEVICES"] == ""
    assert cmd.env["ACCELERATE_USE_CPU"] == "true"


def test_gpu_ids_become_cuda_visible_devices_and_nproc():
    p = Profile(name="g", gpu_ids=[2, 3, 5], env={"NCCL_DEBUG": "INFO"})
    cmd = _cmd(p)
    assert cmd.env["CUDA_VISIBLE_DEVICES"] == "2,3,5"
    assert cmd.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # ids as nvidia-smi / trainwiz gpus number them
    assert cmd.env["NCCL_DEBUG"] == "INFO"
    assert _opt(cmd.argv, "--nproc-per-node") == "3"
    assert cmd.argv[0] == "python3"  # no interpreter in the profile: python3 on PATH


def test_module_target_like_python_dash_m():
    p = Profile(name="cpu", device="cpu", num_processes=1)
    cmd = build_command(p, "pkg.train", ["--x"], run_dir="/r", run_id="r", port=1, module=True)
    assert cmd.argv[-3:] == ["-m", "pkg.train", "--x"]


def test_multi_node_c10d_commands_for_every_machine_share_the_rendezvous():
    p = Profile(name="mn", device="cpu", num_processes=4, num_machines=3, machine_rank=0,
                main_address="10.0.0.1", main_port=29400, max_restarts=2)
    cmds = build_all_nodes(p, "/src/train.py", [], run_dir="/r", run_id="r", port=29400)
    assert [c.node_rank for c in cmds] == [0, 1, 2]
    for i, c in enumerate(cmds):
        assert _opt(c.argv, "--nnodes") == "3"
        assert _opt(c.argv, "--node-rank") == str(i)
        assert _opt(c.argv, "--rdzv-backend") == "c10d"
        assert _opt(c.argv, "--rdzv-endpoint") == "10.0.0.1:29400"
        assert _opt(c.argv, "--max-restarts") == "2"
    assert len({_opt(c.argv, "--rdzv-id") for c in cmds}) == 1
    assert "--rdzv-endpoint 10.0.0.1:29400" in cmds[1].shell()


def test_multi_node_without_main_address_is_refused():
    from trainwiz.errors import TrainwizError

    p = Profile(name="mn", device="cpu", num_processes=1, num_machines=2)
    with pytest.raises(TrainwizError, match="main_address"):
        _cmd(p)


def test_accelerate_launcher_command():
    p = Profile(name="acc", device="cpu", num_processes=2, launcher="accelerate", python="/py")
    cmd = _cmd(p)
    assert cmd.argv[:3] == ["/py", "-m", "accelerate.commands.launch"]
    assert _opt(cmd.argv, "--config_file") == "/runs/r1/accelerate_config.yaml"
    assert _opt(cmd.argv, "--num_processes") == "2"
    assert _opt(cmd.argv, "--main_process_port") == "29555"
    assert _opt(cmd.argv, "--log_dir") == "/runs/r1/torchrun"
    assert "ACCELERATE_USE_FSDP" not in cmd.env  # accelerate sets its own from the config


def _accelerate_own_env(profile, tmp_path):
    """The env accelerate 1.x's own launcher builds for the profile's exported config."""
    import yaml
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    from trainwiz.profiles import to_accelerate_config

    cfg_path = tmp_path / "acc.yaml"
    cfg_path.write_text(yaml.safe_dump(to_accelerate_config(profile, 2)))
    args = launch_command_parser().parse_args(
        ["--config_file", str(cfg_path), "--main_process_port", "29555", "x.py"])
    args, _, _ = _validate_launch_command(args)
    return prepare_multi_gpu_env(args)


@pytest.mark.parametrize("fsdp", [
    FsdpOptions(version=1, sharding_strategy="SHARD_GRAD_OP", backward_prefetch="BACKWARD_POST",
                use_orig_params=False),
    FsdpOptions(version=2, sharding_strategy="FULL_SHARD", offload_params=True,
                transformer_layer_cls_to_wrap=["LlamaDecoderLayer"], activation_checkpointing=True),
    FsdpOptions(version=2, sharding_strategy="SHARD_GRAD_OP", auto_wrap_policy="SIZE_BASED_WRAP",
                min_num_params=1000),
])
def test_fsdp_env_matches_what_accelerate_launch_sets(fsdp, tmp_path):
    profile = Profile(name="f", strategy="fsdp", fsdp=fsdp, mixed_precision="bf16",
                      num_processes=2)
    ours = accelerate_env(profile)
    theirs = _accelerate_own_env(profile, tmp_path)
    keys = [k for k in ours if k.startswith(("FSDP_", "ACCELERATE_"))]
    assert "ACCELERATE_USE_FSDP" in keys and "FSDP_RESHARD_AFTER_FORWARD" in keys
    for key in keys:
        assert ours[key].lower() == str(theirs.get(key)).lower(), key
    theirs_keys = {k for k in theirs if k.startswith(("FSDP_", "ACCELERATE_"))}
    # accelerate always writes these; FSDP2 reads neither (MIN_NUM_PARAMS: SIZE_BASED_WRAP only)
    assert theirs_keys - set(ours) <= {"FSDP_MIN_NUM_PARAMS", "FSDP_SHARDING_STRATEGY"}


def test_mixed_precision_for_accelerator_under_torchrun():
    p = Profile(name="mp", device="cpu", mixed_precision="bf16", num_processes=2)
    assert launch_env(p)["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_command_building_imports_no_torch():
    import subprocess

    code = ("import sys; import trainwiz.launchers.command, trainwiz.launchers.rundir, "
            "trainwiz.launchers.failures, trainwiz.launchers.local, trainwiz.launchers.checks, trainwiz.cli.launch, "
            "trainwiz.cli.runs; "
            "bad = {'torch', 'accelerate', 'textual'} & {m.split('.')[0] for m in sys.modules}; "
            "sys.exit(str(bad) if bad else 0)")
    from tests.conftest import REPO_ROOT

    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_trainwiz_flags_after_the_script_are_trainwizs(run_cli, tmp_path):
    """`launch -p P train.py --print-commands` prints the commands; it never starts a run with
    --print-commands handed to the script. Arguments after `--` stay the script's."""
    import json

    from tests.launchers.helpers import TRAIN_DDP, write_profile

    prof = write_profile(tmp_path, "two")
    out = run_cli("launch", "--profile", str(prof), TRAIN_DDP, "--print-commands",
                  "--steps", "3", "--", "--plain")
    assert out.returncode == 0, out.stderr
    command = [ln for ln in out.stdout.splitlines() if not ln.startswith("#")][0]
    assert command.endswith("--steps 3 --plain")  # script args kept, in order
    assert "--print-commands" not in command
    assert json.loads(run_cli("runs", "--json").stdout) == []
