"""A profile's estimate inputs become the estimator's TrainConfig."""

from __future__ import annotations

from trainwiz.estimator.types import TrainConfig
from trainwiz.profiles import EstimateInputs, FsdpOptions, Profile, estimate_notes, estimate_request


def test_no_estimate_inputs_no_request():
    assert estimate_request(Profile(name="p")) is None


def test_fsdp_profile_maps_sharding_offload_checkpointing_and_world():
    p = Profile(name="p", strategy="fsdp", mixed_precision="bf16", num_processes=4,
                num_machines=2, machine_rank=0, main_address="h",
                fsdp=FsdpOptions(version=1, sharding_strategy="HYBRID_SHARD",
                                 offload_params=True, activation_checkpointing=True),
                estimate=EstimateInputs(model="llama-3-8b", batch_size=3, seq_len=1024,
                                        optimizer="sgd", grad_accum=2, attention="eager"))
    model, cfg = estimate_request(p)
    assert model == "llama-3-8b"
    assert cfg == TrainConfig(strategy="fsdp", num_gpus=8, sharding="HYBRID_SHARD", num_nodes=2,
                              precision="bf16", optimizer="sgd", batch_size=3, seq_len=1024,
                              grad_accum=2, activation_checkpointing=True, offload_params=True,
                              attention="eager")


def test_open_gpu_count_comes_from_the_machine_and_precision_no_is_fp32():
    p = Profile(name="p", strategy="ddp", estimate=EstimateInputs(model="params:7e9",
                                                                  activation_checkpointing=True))
    _, cfg = estimate_request(p, num_gpus=8)
    assert (cfg.strategy, cfg.num_gpus, cfg.precision, cfg.activation_checkpointing,
            cfg.offload_params) == ("ddp", 8, "fp32", True, False)
    _, one = estimate_request(Profile(name="q", strategy="ddp", gpu_ids=[5],
                                      estimate=EstimateInputs(model="x")))
    assert (one.strategy, one.num_gpus) == ("single", 1)


def test_fp8_is_estimated_as_bf16_with_a_note():
    p = Profile(name="p", strategy="single", mixed_precision="fp8",
                estimate=EstimateInputs(model="x"))
    assert estimate_request(p)[1].precision == "bf16"
    assert any("fp8" in n for n in estimate_notes(p))


def test_a_fused_optimizer_is_kept_in_the_file_and_reaches_the_estimate(tmp_path):
    from trainwiz.profiles import load_profile, save_profile

    p = Profile(name="fused", strategy="fsdp", num_processes=2,
                estimate=EstimateInputs(model="llama-3-8b", fused_optimizer=True))
    path = save_profile(p, path=tmp_path / "fused.yaml")
    assert "fused_optimizer: true" in path.read_text()
    _, cfg = estimate_request(load_profile(str(path)))
    assert cfg.fused_optimizer is True
