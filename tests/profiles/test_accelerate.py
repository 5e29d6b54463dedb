"""accelerate interoperability, proven with accelerate itself.

Every exported file is read by accelerate's own loader (``load_config_from_file``), then run
through the path ``accelerate launch --config_file FILE`` takes (``_validate_launch_command`` and
``prepare_multi_gpu_env``) to the environment each rank gets, and finally into the
``FullyShardedDataParallelPlugin`` a rank builds from that environment: the sharding strategy the
ranks would really use is compared with the profile's.
"""

from __future__ import annotations

import warnings

import pytest
import yaml

from tests.conftest import REPO_ROOT
from trainwiz.profiles import (
    FsdpOptions,
    Profile,
    ProfileError,
    accelerate_config_text,
    accelerate_default_config_path,
    from_accelerate_config,
    profile_to_dict,
    to_accelerate_config,
)

pytest.importorskip("accelerate")
from accelerate.commands.config.config_args import load_config_from_file  # noqa: E402
from accelerate.commands.launch import _validate_launch_command, launch_command_parser  # noqa: E402
from accelerate.utils.launch import prepare_multi_gpu_env  # noqa: E402

TALK = REPO_ROOT.parent / "shared" / "reference" / "scaling-training-talk.txt"
DDP_TALK = """compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
main_training_function: main
mixed_precision: bf16
num_machines: 1
num_processes: 8
"""
FSDP_TALK = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_backward_prefetch: BACKWARD_PRE
  fsdp_cpu_ram_efficient_loading: true
  fsdp_forward_prefetch: false
  fsdp_offload_params: false
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_sync_module_states: true
  fsdp_use_orig_params: false
main_training_function: main
mixed_precision: bf16
num_machines: 1
num_processes: 8
"""


def test_reference_configs_are_the_talks():
    if not TALK.is_file():
        pytest.skip("reference talk not present")
    text = TALK.read_text()
    for cfg in (DDP_TALK, FSDP_TALK):
        body = "\n".join(cfg.strip().splitlines()[1:])  # the talk's text lists them verbatim
        assert body in text


def meaning(path, monkeypatch) -> dict:
    """What accelerate makes of a config file: its loader, its launcher, its FSDP plugin."""
    cfg = load_config_from_file(str(path))
    out = {"distributed_type": cfg.distributed_type.value, "mixed_precision": cfg.mixed_precision,
           "num_machines": cfg.num_machines, "use_cpu": cfg.use_cpu}
    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, _, _ = _validate_launch_command(args)
    out["num_processes"] = args.num_processes
    out["gpu_ids"] = args.gpu_ids
    if not (args.multi_gpu or args.use_fsdp):
        return out
    env = prepare_multi_gpu_env(args)
    out["nproc_per_node"] = args.nproc_per_node
    out["mixed_precision_env"] = env["ACCELERATE_MIXED_PRECISION"]
    if not args.use_fsdp:
        return out
    for key, value in env.items():
        if key.startswith("FSDP_"):
            monkeypatch.setenv(key, value)
    # These two make the plugin look for a GPU; they do not change how it shards.
    out["sync_module_states"] = env["FSDP_SYNC_MODULE_STATES"]
    out["cpu_ram_efficient_loading"] = env["FSDP_CPU_RAM_EFFICIENT_LOADING"]
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    from accelerate.utils import FullyShardedDataParallelPlugin

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FSDP2 notes about obsolete options
        plugin = FullyShardedDataParallelPlugin()
    out["fsdp_version"] = plugin.fsdp_version
    if plugin.fsdp_version == 1:
        # accelerate.Accelerator uses `sharding_strategy or reshard_after_forward` for FSDP1
        strategy = plugin.sharding_strategy or plugin.reshard_after_forward
        out["sharding"] = strategy.name
    else:
        out["sharding"] = "FULL_SHARD" if plugin.reshard_after_forward else "SHARD_GRAD_OP"
    offload = plugin.cpu_offload  # FSDP1: CPUOffload(offload_params); FSDP2: an OffloadPolicy
    out["offload"] = bool(getattr(offload, "offload_params",
                                  type(offload).__name__ == "CPUOffloadPolicy"))
    out["auto_wrap"] = getattr(plugin.auto_wrap_policy, "__name__", None)
    out["layer_cls"] = plugin.transformer_cls_names_to_wrap
    out["backward_prefetch"] = getattr(plugin.backward_prefetch, "name", None)
    out["state_dict_type"] = plugin.state_dict_type.name
    out["use_orig_params"] = plugin.use_orig_params
    out["forward_prefetch"] = plugin.forward_prefetch
    out["activation_checkpointing"] = plugin.activation_checkpointing
    return out


def _export(profile, tmp_path, name="exported.yaml", num_gpus=None):
    path = tmp_path / name
    path.write_text(accelerate_config_text(profile, num_gpus))
    return path


def _import(path, name="imported", warnings=None):
    return from_accelerate_config(yaml.safe_load(path.read_text()), name=name, source=str(path),
                                  warnings=warnings)


@pytest.mark.parametrize("text", [DDP_TALK, FSDP_TALK], ids=["ddp_config", "fsdp_config"])
def test_talk_configs_survive_import_and_export(text, tmp_path, monkeypatch):
    original = tmp_path / "original.yaml"
    original.write_text(text)
    warnings: list[str] = []
    profile = _import(original, warnings=warnings)
    assert warnings == []
    assert profile.num_processes == 8 and profile.mixed_precision == "bf16"
    exported = _export(profile, tmp_path)
    assert meaning(exported, monkeypatch) == meaning(original, monkeypatch)
    assert _import(exported) == profile


STRATEGIES = [
    Profile(name="single", strategy="single", mixed_precision="bf16"),
    Profile(name="single-gpu3", strategy="single", gpu_ids=[3]),
    Profile(name="ddp", strategy="ddp", gpu_ids=[0, 1], mixed_precision="fp16"),
    Profile(name="ddp-all", strategy="ddp", num_processes=4),
    Profile(name="ddp-2nodes", strategy="ddp", num_processes=2, num_machines=2, machine_rank=0,
            main_address="10.0.0.1", main_port=29555, rdzv_backend="static"),
    Profile(name="ddp-cpu", strategy="ddp", device="cpu", num_processes=2),
    *[Profile(name=f"fsdp1-{s}", strategy="fsdp", gpu_ids=[0, 1], mixed_precision="bf16",
              fsdp=FsdpOptions(version=1, sharding_strategy=s))
      for s in ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD")],
    *[Profile(name=f"fsdp2-{s}", strategy="fsdp", num_processes=8,
              fsdp=FsdpOptions(version=2, sharding_strategy=s))
      for s in ("FULL_SHARD", "SHARD_GRAD_OP")],
    Profile(name="fsdp1-options", strategy="fsdp", gpu_ids=[0, 1, 2, 3],
            fsdp=FsdpOptions(version=1, sharding_strategy="SHARD_GRAD_OP",
                             auto_wrap_policy="TRANSFORMER_BASED_WRAP",
                             transformer_layer_cls_to_wrap=["LlamaDecoderLayer", "Embedding"],
                             backward_prefetch="BACKWARD_POST", forward_prefetch=True,
                             state_dict_type="FULL_STATE_DICT", use_orig_params=False,
                             activation_checkpointing=True, cpu_ram_efficient_loading=False,
                             sync_module_states=False)),
    Profile(name="fsdp2-offload", strategy="fsdp", gpu_ids=[0, 1],
            fsdp=FsdpOptions(offload_params=True)),
    Profile(name="fsdp1-offload", strategy="fsdp", gpu_ids=[0, 1],
            fsdp=FsdpOptions(version=1, offload_params=True, auto_wrap_policy="NO_WRAP")),
    Profile(name="fsdp2-size-wrap", strategy="fsdp", gpu_ids=[0, 1],
            fsdp=FsdpOptions(auto_wrap_policy="SIZE_BASED_WRAP", min_num_params=2_000_000,
                             activation_checkpointing=True)),
]


@pytest.mark.parametrize("profile", STRATEGIES, ids=[p.name for p in STRATEGIES])
def test_every_strategy_exports_to_what_accelerate_runs(profile, tmp_path, monkeypatch):
    path = _export(profile, tmp_path)
    got = meaning(path, monkeypatch)
    world = (profile.processes_per_machine or 1) * profile.num_machines
    assert got["num_processes"] == world
    assert got["mixed_precision"] == profile.mixed_precision
    assert got["num_machines"] == profile.num_machines
    if profile.device == "cpu":
        assert got["distributed_type"] == "MULTI_CPU" and got["use_cpu"] is True
    elif profile.strategy == "fsdp":
        f = profile.fsdp
        assert got["distributed_type"] == "FSDP"
        assert got["fsdp_version"] == f.version
        assert got["sharding"] == f.sharding_strategy  # the one the ranks will really use
        assert got["offload"] == f.offload_params
        assert got["auto_wrap"] == {"TRANSFORMER_BASED_WRAP": "transformer_auto_wrap_policy",
                                    "SIZE_BASED_WRAP": "size_based_auto_wrap_policy",
                                    "NO_WRAP": None}[f.auto_wrap_policy]
        assert got["state_dict_type"] == f.state_dict_type
        assert got["activation_checkpointing"] == f.activation_checkpointing
        if f.transformer_layer_cls_to_wrap:
            assert got["layer_cls"] == f.transformer_layer_cls_to_wrap
        if f.version == 1:
            assert got["backward_prefetch"] == f.backward_prefetch
            assert got["use_orig_params"] == f.use_orig_params
            assert got["forward_prefetch"] == f.forward_prefetch
    elif world > 1:
        assert got["distributed_type"] == "MULTI_GPU"
        assert int(got["nproc_per_node"]) == profile.processes_per_machine
    else:
        assert got["distributed_type"] == "NO"
    if profile.gpu_ids and profile.device == "cuda":
        assert got["gpu_ids"] == ",".join(map(str, profile.gpu_ids))
    # and back: the same profile, now launched by accelerate
    back = _import(path, name=profile.name)
    expected = Profile(**{**profile.__dict__, "launcher": "accelerate"})
    assert profile_to_dict(back) == profile_to_dict(expected)


def test_accelerate_config_fsdp1_choice_is_kept_where_accelerate_would_drop_it(tmp_path,
                                                                              monkeypatch):
    # What `accelerate config` itself writes for FSDP1 SHARD_GRAD_OP.
    written_by_accelerate = tmp_path / "acc.yaml"
    written_by_accelerate.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nfsdp_config:\n"
        "  fsdp_version: 1\n  fsdp_reshard_after_forward: SHARD_GRAD_OP\n"
        "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\nmixed_precision: bf16\n"
        "num_machines: 1\nnum_processes: 2\n")
    # accelerate launch runs it as FULL_SHARD (the quirk the export works around) ...
    assert meaning(written_by_accelerate, monkeypatch)["sharding"] == "FULL_SHARD"
    warnings: list[str] = []
    profile = _import(written_by_accelerate, warnings=warnings)
    assert profile.fsdp.sharding_strategy == "SHARD_GRAD_OP"
    assert any("would run FULL_SHARD" in w for w in warnings)
    # ... and the export makes it stick.
    assert meaning(_export(profile, tmp_path), monkeypatch)["sharding"] == "SHARD_GRAD_OP"


@pytest.mark.parametrize("value, expected", [(1, "FULL_SHARD"), (2, "SHARD_GRAD_OP"),
                                             (3, "NO_SHARD"), (4, "HYBRID_SHARD"),
                                             ("2", "SHARD_GRAD_OP"), ("hybrid_shard",
                                                                      "HYBRID_SHARD")])
def test_legacy_sharding_strategy_forms(value, expected):
    data = {"distributed_type": "FSDP", "num_processes": 2,
            "fsdp_config": {"fsdp_sharding_strategy": value}}
    assert from_accelerate_config(data, name="x", source="f.yaml").fsdp.sharding_strategy == \
        expected


def test_fsdp2_reshard_after_forward():
    base = {"distributed_type": "FSDP", "num_processes": 2}
    for value, expected in ((True, "FULL_SHARD"), (False, "SHARD_GRAD_OP"),
                            ("false", "SHARD_GRAD_OP")):
        data = {**base, "fsdp_config": {"fsdp_version": 2, "fsdp_reshard_after_forward": value}}
        p = from_accelerate_config(data, name="x", source="f.yaml")
        assert (p.fsdp.version, p.fsdp.sharding_strategy) == (2, expected)


def test_deepspeed_is_refused_naming_the_file():
    data = {"compute_environment": "LOCAL_MACHINE", "distributed_type": "DEEPSPEED",
            "deepspeed_config": {"zero_stage": 3}}
    with pytest.raises(ProfileError, match=r"^ds\.yaml: key 'distributed_type': DeepSpeed "
                                           r"\(DEEPSPEED\) configs are not supported yet"):
        from_accelerate_config(data, name="x", source="ds.yaml")


def test_unknown_keys_are_reported():
    data = {"distributed_type": "MULTI_GPU", "num_processes": 2, "mixed_precison": "bf16",
            "fsdp_config": {}}
    with pytest.raises(ProfileError, match="unknown key 'mixed_precison'.*did you mean "
                                           "'mixed_precision'"):
        from_accelerate_config(data, name="x", source="f.yaml")
    fsdp = {"distributed_type": "FSDP", "num_processes": 2,
            "fsdp_config": {"fsdp_sharding_stratgy": "FULL_SHARD"}}
    with pytest.raises(ProfileError, match="did you mean 'fsdp_sharding_strategy'"):
        from_accelerate_config(fsdp, name="x", source="f.yaml")
    warnings: list[str] = []
    from_accelerate_config({"distributed_type": "NO", "dynamo_config": {"dynamo_backend":
                                                                        "INDUCTOR"}},
                           name="x", source="f.yaml", warnings=warnings)
    assert any("dynamo_config" in w and "not imported" in w for w in warnings)


def test_profile_needing_a_gpu_count_says_so():
    with pytest.raises(ProfileError, match="process count"):
        to_accelerate_config(Profile(name="all", strategy="ddp"))
    assert to_accelerate_config(Profile(name="all", strategy="ddp"), num_gpus=4)[
        "num_processes"] == 4


def test_default_config_path_follows_hf_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert accelerate_default_config_path() == tmp_path / "hf" / "accelerate" / \
        "default_config.yaml"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert accelerate_default_config_path() == tmp_path / "cache" / "huggingface" / \
        "accelerate" / "default_config.yaml"


def test_a_slurm_profile_exports_every_node_of_the_job():
    """A 4-node Slurm profile exported as an accelerate config said num_machines 1 and 8
    processes: a user launching with that file would start an eighth of the run."""
    from trainwiz.profiles import to_accelerate_config
    from trainwiz.profiles.schema import Profile, SlurmOptions

    p = Profile(name="fsdp-32", strategy="fsdp", num_processes=8, scheduler="slurm",
                slurm=SlurmOptions(nodes=4))
    cfg = to_accelerate_config(p)
    assert (cfg["num_machines"], cfg["num_processes"]) == (4, 32)
