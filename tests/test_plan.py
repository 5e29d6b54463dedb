"""The one plan model the wizard, `config --plain` and the Launch screen share: what the user
chose is what is priced and what is saved, on the hardware it was planned for."""

from __future__ import annotations

import pytest

from trainwiz.hardware import detect
from trainwiz.plan import Plan, box_from_gpus, box_from_preset, resolve_model
from trainwiz.profiles import profile_from_dict, profile_to_dict, validate_profile


def _box(spec: str):
    return box_from_gpus(detect(spec).gpus, simulated=True)


def test_a_suggestion_beyond_one_machine_plans_more_machines_and_saves_them():
    plan = Plan.for_box(_box("8xH100-80GB"), "llama-3-70b").with_changes(
        {"strategy": "fsdp", "loop": "trainer"})
    model = resolve_model(plan.model)
    result = plan.estimate(model)
    big = next(s for s in result.suggestions if s.change.get("num_gpus", 0) > 8)
    machines = big.change["num_gpus"] // 8
    assert f"{machines} machines × 8 GPUs" in big.note and "this box has" not in big.note
    applied = plan.with_changes(big.change)
    assert (applied.machines, applied.gpus_per_machine) == (machines, 8)
    assert applied.estimate(model).estimate.per_gpu.total == big.total
    applied = applied.with_changes({"machines": 4})  # 32 GPUs, as the form sets it
    assert applied.config.num_gpus == 32

    profile = validate_profile(applied.to_profile("big"))
    assert profile.num_machines == 4 and profile.world_size == 32 and profile.gpu_ids is None
    assert profile.hardware.gpu == "NVIDIA H100 80GB HBM3" and profile.hardware.simulated
    assert profile.hardware.gpus_per_machine == 8

    # reopened on a 2-GPU box: the plan it holds, for the hardware it was made for
    here = _box("2xH100-80GB")
    again = Plan.from_profile(profile, here)
    assert (again.machines, again.gpus_per_machine) == (4, 8)
    assert again.estimate(model).estimate.per_gpu.total == \
        applied.estimate(model).estimate.per_gpu.total
    assert "Planned for 8× NVIDIA H100 80GB HBM3 (simulated)" in again.differs(here)
    assert "this box has 2× NVIDIA H100" in again.differs(here)


def test_a_saved_count_survives_a_round_trip_through_the_file():
    plan = Plan.for_box(_box("8xH100-80GB"), "gpt2")
    data = profile_to_dict(plan.to_profile("p"))
    assert data["num_processes"] == 8  # what --simulate 8x… planned: export needs it later
    back = profile_from_dict(data, source="p.yaml", name="p")
    assert Plan.from_profile(back, _box("8xH100-80GB")).config == plan.config


def test_mixed_box_one_verdict_per_gpu_decided_by_the_smallest():
    plan = Plan.for_box(_box("4xA100-80GB+4xL4"), "llama-3.2-1b")
    result = plan.estimate(resolve_model("llama-3.2-1b"))
    verdicts = {f.gpu.name: f.verdict for f in result.gpus}
    assert verdicts == {"NVIDIA A100-SXM4-80GB": "fits", "NVIDIA L4": "does not fit"}
    assert result.verdict == "does not fit" and result.decisive.name == "NVIDIA L4"
    assert result.estimate.gpu_memory == result.decisive.memory_total
    assert [r.label for r in result.rows()] == ["GPU0-3", "GPU4-7"]
    subset = next(s for s in result.suggestions if "gpu_ids" in s.change)
    assert subset.change["gpu_ids"] == [0, 1, 2, 3] and "leave out GPUs 4,5,6,7" in subset.note
    after = plan.with_changes(subset.change)
    assert after.estimate(resolve_model("llama-3.2-1b")).verdict == "fits"
    assert after.to_profile("x").gpu_ids == [0, 1, 2, 3]


def test_on_a_busy_box_the_free_gpus_are_a_suggestion(tmp_path):
    box_file = tmp_path / "busy.yaml"
    box_file.write_text("gpus:\n  - {preset: H100-80GB, count: 2}\n"
                        "  - {preset: H100-80GB, memory_used: 60GiB}\n")
    plan = Plan.for_box(_box(str(box_file)), "llama-3-8b")
    result = plan.estimate(resolve_model("llama-3-8b"))
    subset = next(s for s in result.suggestions if "gpu_ids" in s.change)
    assert subset.change["gpu_ids"] == [0, 1] and subset.fits
    assert "leave out GPU 2" in subset.note


def test_same_plan_same_suggestions_whichever_way_the_box_was_chosen():
    model = resolve_model("llama-3-8b")
    from trainwiz.hardware.presets import PRESETS

    this_box = Plan.for_box(_box("2xH100-80GB"), "llama-3-8b")
    preset = Plan.for_box(box_from_preset(PRESETS["H100-80GB"])).with_changes({"num_gpus": 2})
    assert preset.config == this_box.config
    a, b = this_box.estimate(model), preset.estimate(model)
    def same(s):  # the machines differ: this box holds 2 GPUs, a preset's machine 8
        return {k: v for k, v in s.change.items() if k != "num_nodes"}, s.total
    assert [same(s) for s in a.suggestions] == [same(s) for s in b.suggestions]
    for s in a.suggestions:  # the box size is said once, never twice
        assert s.note.count("this box") == 0
    for s in a.suggestions + b.suggestions:  # more machines are in the change (and its time)
        assert ("machines ×" in s.note) == ("num_nodes" in s.change)


@pytest.mark.parametrize("sharding", ["NO_SHARD", "HYBRID_SHARD"])
def test_fsdp1_only_sharding_saves_as_fsdp_version_1(sharding):
    plan = Plan.for_box(_box("2xH100-80GB"), "gpt2").with_changes(
        {"strategy": "fsdp", "sharding": sharding})
    profile = validate_profile(plan.to_profile("p"))
    assert profile.fsdp.version == 1 and profile.fsdp.sharding_strategy == sharding


def test_one_resolver_for_every_model_string(tmp_path):
    assert resolve_model("params:7e9").params == 7_000_000_000
    assert resolve_model("llama-3-8b").params == 8_030_261_248
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(
        '{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 100,'
        ' "n_positions": 128}')
    assert resolve_model(str(tmp_path / "m")).params > 0


def test_a_hugging_face_id_is_found_in_the_local_cache_or_the_catalog(tmp_path, monkeypatch):
    hub = tmp_path / "hf" / "hub" / "models--acme--tiny-gpt"
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text("abc123")
    snapshot = hub / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(
        '{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 100,'
        ' "n_positions": 128}')
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    tiny = resolve_model("acme/tiny-gpt")
    assert tiny.name == "acme/tiny-gpt" and tiny.family == "gpt2" and tiny.max_position == 128
    assert resolve_model("meta-llama/Meta-Llama-3-8B").params == 8_030_261_248  # the catalog's
    from trainwiz.errors import UsageError

    with pytest.raises(UsageError, match="not in the Hugging Face cache"):
        resolve_model("acme/unknown-model")


def test_the_cli_gives_the_same_verdicts_and_the_gpu_subset(run_cli, tmp_path):
    import json

    box_file = tmp_path / "busy.yaml"
    box_file.write_text("gpus:\n  - {preset: H100-80GB, count: 2}\n"
                        "  - {preset: H100-80GB, memory_used: 60GiB}\n")
    out = run_cli("estimate", "llama-3-8b", "--simulate", str(box_file), "--strategy", "ddp",
                  "--json")
    data = json.loads(out.stdout)
    plan = Plan.for_box(_box(str(box_file)), "llama-3-8b")
    result = plan.estimate(resolve_model("llama-3-8b"))
    assert [g["verdict"] for g in data["gpus"]] == [f.verdict for f in result.gpus]
    subset = [s for s in data["suggestions"] if "gpu_ids" in s["change"]]
    assert subset and subset[0]["change"]["gpu_ids"] == [0, 1] and subset[0]["fits"]
    text = run_cli("estimate", "llama-3-8b", "--simulate", str(box_file), "--strategy", "ddp")
    assert "leave out GPU 2" in text.stdout and "CUDA_VISIBLE_DEVICES=0,1" in text.stdout


def test_cpu_ranks_are_not_capped_by_a_gpu_count():
    import dataclasses

    plan = dataclasses.replace(Plan.for_box(box_from_gpus(())), device="cpu")
    plan = plan.with_changes({"strategy": "ddp", "gpus_per_machine": 16})
    profile = validate_profile(plan.to_profile("cpu16"))
    assert profile.device == "cpu" and profile.num_processes == 16 and profile.hardware is None


def test_a_slurm_plan_leaves_the_nodes_to_slurm():
    plan = Plan.for_box(_box("8xH100-80GB"), "llama-3-8b").with_changes(
        {"scheduler": "slurm", "machines": 4})
    profile = validate_profile(plan.to_profile("on-slurm"))
    assert profile.scheduler == "slurm" and profile.slurm.nodes == 4
    assert profile.num_machines == 1 and profile.gpu_ids is None and profile.num_processes == 8
    assert profile.world_size == 32
    again = Plan.from_profile(profile, _box("8xH100-80GB"))
    assert (again.scheduler, again.machines, again.config.num_gpus) == ("slurm", 4, 32)


def test_a_lora_plan_saves_its_adapters_and_reopens_as_the_same_plan():
    plan = Plan.for_box(_box("1xH100-80GB"), "llama-3-8b").with_changes(
        {"method": "lora", "lora_rank": 8})
    profile = validate_profile(plan.to_profile("lora8"))
    assert profile.estimate.method == "lora" and profile.estimate.lora.rank == 8
    assert Plan.from_profile(profile, _box("1xH100-80GB")).config == plan.config
    full = Plan.from_profile(profile, _box("1xH100-80GB")).with_changes({"method": "full"})
    assert validate_profile(full.to_profile("full")).estimate.lora is None


def test_a_gpu_subset_suggestion_is_timed_on_its_gpus():
    """'use GPU 0 (leave out GPU 1) + CPU offload' was timed on both GPUs (~589 tokens/s, as
    much as offloading on the two), because its change named the GPU ids and not their count."""
    here = box_from_gpus(detect("tests/tui/boxes/busy-2xh100.yaml").gpus, simulated=True)
    plan = Plan.for_box(here, "llama-3-8b").with_changes({"strategy": "fsdp", "batch_size": 2})
    model = resolve_model(plan.model)
    result = plan.estimate(model)
    subset = next(s for s in result.suggestions if "gpu_ids" in s.change)
    assert subset.change["num_gpus"] == len(subset.change["gpu_ids"]) == 1
    _, timed = plan.time(result)
    timed_subset = next(t for t in timed if t.suggestion is subset)
    applied = plan.with_changes(subset.change)
    alone, _ = applied.time(applied.estimate(model))
    assert timed_subset.time.tokens_per_second == pytest.approx(alone.tokens_per_second)
    both = next(t for t in timed if t.suggestion.change == {"offload_params": True})
    assert timed_subset.time.tokens_per_second < both.time.tokens_per_second
