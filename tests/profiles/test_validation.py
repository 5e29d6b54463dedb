"""What a user sees when a profile file is wrong: the file, the line, the key, what is allowed."""

from __future__ import annotations

import pytest

from trainwiz.errors import TrainwizError
from trainwiz.profiles import ProfileError, load_profile, profile_from_dict
from trainwiz.profiles.validate import parse_yaml


def _load(tmp_path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_profile(str(path))


def _error(tmp_path, text: str) -> str:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, text)
    assert isinstance(info.value, TrainwizError) and info.value.exit_code == 2
    return str(info.value)


def test_misspelt_key_names_file_line_and_the_right_key(tmp_path):
    msg = _error(tmp_path, "strategy: fsdp\nmixed_precison: bf16\n")
    assert f"{tmp_path / 'p.yaml'}:2:" in msg
    assert "unknown key 'mixed_precison'" in msg
    assert "did you mean 'mixed_precision'?" in msg


def test_nested_misspelt_key(tmp_path):
    msg = _error(tmp_path, "strategy: fsdp\nfsdp:\n  version: 1\n  sharding_stratgy: NO_SHARD\n")
    assert ":4:" in msg and "'fsdp.sharding_stratgy'" in msg
    assert "did you mean 'sharding_strategy'?" in msg


def test_bad_value_lists_allowed_values(tmp_path):
    msg = _error(tmp_path, "strategy: fsdp\nfsdp:\n  sharding_strategy: FULL_SHRAD\n")
    assert ":3:" in msg and "'fsdp.sharding_strategy'" in msg
    assert "FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD" in msg
    assert "did you mean 'FULL_SHARD'?" in msg


def test_wrong_types(tmp_path):
    msg = _error(tmp_path, "num_processes: two\nenv:\n  NCCL_DEBUG: true\ngpu_ids: [0, x]\n")
    assert "key 'num_processes' must be an integer" in msg
    assert "env.NCCL_DEBUG" in msg and 'quote it' in msg
    assert "key 'gpu_ids' must be a list of GPU indices" in msg
    assert msg.startswith(f"{tmp_path / 'p.yaml'}: 3 problems")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    msg = _error(tmp_path, "strategy: ddp\ngpu_ids: [0, 1\nmixed_precision: bf16\n")
    assert f"{tmp_path / 'p.yaml'}:" in msg and "not valid YAML" in msg
    line = int(msg.split(f"{tmp_path / 'p.yaml'}:")[1].split(":")[0])
    assert line in (3, 4)


def test_yaml_tags_are_not_executed(tmp_path):
    msg = _error(tmp_path, "strategy: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in msg


def test_case_is_forgiven_for_enums(tmp_path):
    p = _load(tmp_path, "strategy: FSDP\nfsdp:\n  sharding_strategy: shard_grad_op\n"
                        "gpu_ids: [0, 1]\nmixed_precision: BF16\n")
    assert (p.strategy, p.fsdp.sharding_strategy, p.mixed_precision) == \
        ("fsdp", "SHARD_GRAD_OP", "bf16")


@pytest.mark.parametrize("text, expected", [
    ("strategy: fsdp\ngpu_ids: [3]\nfsdp: {sharding_strategy: SHARD_GRAD_OP}\n",
     "SHARD_GRAD_OP on one process"),
    ("strategy: fsdp\nnum_processes: 1\nfsdp: {version: 1, sharding_strategy: HYBRID_SHARD}\n",
     "HYBRID_SHARD on one process"),
    ("strategy: ddp\nfsdp: {offload_params: true}\n", "FSDP options are set but strategy is 'ddp'"),
    ("gpu_ids: [0, 1, 1]\n", "GPU 1 listed twice"),
    ("gpu_ids: [0, 1]\nnum_processes: 4\n", "4 processes on 2 GPU(s)"),
    ("num_machines: 2\nmachine_rank: 2\nmain_address: 10.0.0.1\n",
     "key 'machine_rank': 2 with num_machines 2; allowed: 0 to 1"),
    ("strategy: fsdp\nfsdp: {sharding_strategy: NO_SHARD}\n", "needs FSDP version 1"),
    ("strategy: single\nnum_processes: 2\n", "strategy 'single' runs one process"),
    ("device: cpu\ngpu_ids: [0]\n", "device is 'cpu'"),
    ("strategy: fsdp\nfsdp: {version: 1, cpu_ram_efficient_loading: true, "
     "sync_module_states: false}\n", "must be true when cpu_ram_efficient_loading"),
    ("version: 7\n", "written by a newer trainwiz"),
])
def test_impossible_combinations_are_refused_with_the_reason(tmp_path, text, expected):
    assert expected in _error(tmp_path, text)


def test_all_problems_reported_at_once(tmp_path):
    msg = _error(tmp_path, "gpu_ids: [1, 1]\nnum_machines: 2\nmachine_rank: 5\nlauncher: slurm\n")
    assert "3 problems" in msg
    for part in ("listed twice", "machine_rank", "allowed: torchrun, accelerate"):
        assert part in msg


def test_profile_from_dict_uses_the_source_it_is_given():
    data, lines = parse_yaml("strategy: dpp\n", "inline")
    with pytest.raises(ProfileError, match=r"^inline:1: key 'strategy': 'dpp' is not allowed "
                                           r"\(did you mean 'ddp'\?\); allowed: single, ddp, fsdp"):
        profile_from_dict(data, source="inline", name="x", lines=lines)


def test_a_multi_machine_plan_leaves_the_address_to_launch_time(tmp_path):
    """Planned in the wizard as 4 machines × 8 GPUs: machine 0's address is not known yet."""
    path = tmp_path / "big.yaml"
    path.write_text("strategy: fsdp\nnum_machines: 4\nnum_processes: 8\n"
                    "hardware: {gpu: NVIDIA H100 80GB HBM3, gpu_memory: 85520809984, "
                    "gpus_per_machine: 8, simulated: true}\n")
    data, lines = parse_yaml(path.read_text(), str(path))
    profile = profile_from_dict(data, source=str(path), name="big", lines=lines)
    assert profile.world_size == 32 and profile.main_address is None
    assert profile.hardware.gpus_per_machine == 8 and profile.hardware.simulated


def test_planned_hardware_is_checked_like_any_field(tmp_path):
    msg = _error(tmp_path, "hardware: {gpu: H100, gpu_memory: lots}\n")
    assert "hardware.gpu_memory' must be an integer" in msg
    msg = _error(tmp_path, "hardware: {gpu: H100, gpu_memory: 1, gpus: 8}\n")
    assert "unknown key 'hardware.gpus'" in msg and "gpus_per_machine" in msg


def test_a_section_left_empty_means_its_defaults(tmp_path):
    """Every option of a section commented out leaves `fsdp:` with nothing under it."""
    p = _load(tmp_path, "strategy: fsdp\nfsdp:\n#  version: 1\nestimate:\n")
    assert p.fsdp.version == 2 and p.estimate is None
    assert "key 'fsdp' must be a mapping" in _error(tmp_path, "strategy: fsdp\nfsdp: 3\n")


def test_absurd_counts_are_refused_with_the_allowed_range(tmp_path):
    """num_processes 1e12 imported fine and preflight wanted 53 billion TiB of host memory;
    batch 1e20 showed 421595718383789080576.0 GiB in the wizard. Each is refused at load with
    its line, its key and the range allowed, all at once."""
    msg = _error(tmp_path, "strategy: ddp\ndevice: cpu\nnum_processes: 1000000000000\n"
                           "num_machines: 100000\nestimate:\n  model: gpt2\n"
                           "  batch_size: 100000000000000000000\n  seq_len: 10000000\n"
                           "  grad_accum: 1000000000\n  lora:\n    rank: 100000\n")
    for line, key, allowed in ((3, "num_processes", "from 1 to 1024"),
                               (4, "num_machines", "from 1 to 4096"),
                               (7, "estimate.batch_size", "from 1 to 65536"),
                               (8, "estimate.seq_len", "from 1 to 1,048,576"),
                               (9, "estimate.grad_accum", "from 1 to 65536"),
                               (11, "estimate.lora.rank", "from 1 to 4096")):
        assert f"p.yaml:{line}: key '{key}' must be {allowed}" in msg, (key, msg)
    ok = _load(tmp_path, "strategy: ddp\ndevice: cpu\nnum_processes: 1024\n"
                         "estimate:\n  model: gpt2\n  batch_size: 65536\n", name="ok.yaml")
    assert ok.num_processes == 1024 and ok.estimate.batch_size == 65536
