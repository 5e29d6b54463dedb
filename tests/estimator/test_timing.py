"""The time model as a user meets it: `trainwiz estimate` says how long a plan takes, ranks the
changes that fit by speed, and says "not estimated" rather than guess."""

from __future__ import annotations

import json

import pytest

from trainwiz.errors import UsageError
from trainwiz.estimator.catalog import resolve_model
from trainwiz.estimator.fit import estimate
from trainwiz.estimator.types import TrainConfig
from trainwiz.estimator.gpu_facts import all_gpu_facts, gpu_facts
from trainwiz.estimator.timing import estimate_time, time_hardware, time_plan
from trainwiz.units import parse_count, parse_rate
from trainwiz.hardware import PRESETS, parse_simulate

GiB = 1 << 30
LLAMA8 = resolve_model("llama-3-8b")


def _time(spec: str, model=LLAMA8, network=None, **config):
    gpus = parse_simulate(spec)
    config.setdefault("num_gpus", len(gpus))
    config.setdefault("strategy", "fsdp" if config["num_gpus"] > 1 else "single")
    config.setdefault("precision", "bf16")
    config.setdefault("seq_len", 2048)
    cfg = TrainConfig(**config)
    return estimate_time(model, cfg, time_hardware(gpus, network=network))


def test_the_talks_case_offload_on_two_4090s_is_at_least_ten_times_slower(run_cli):
    """Full fine-tune of Llama-3-8B: FSDP with CPU offload on 2x4090 (the talk: 72 h) against a
    setup that fits on one H100 (the talk: an hour or two)."""
    offload = run_cli("estimate", "llama-3-8b", "--simulate", "2x4090", "--strategy", "fsdp",
                      "--offload-params", "--tokens", "1e8", "--json")
    h100 = run_cli("estimate", "llama-3-8b", "--simulate", "1xH100-80GB", "--optimizer",
                   "adafactor", "--fused-optimizer", "--activation-checkpointing", "--tokens",
                   "1e8", "--json")
    assert offload.returncode == 0 and h100.returncode == 0, offload.stderr + h100.stderr
    slow, fast = json.loads(offload.stdout), json.loads(h100.stdout)
    assert slow["fits"] and fast["fits"]
    assert slow["time"]["bound"] == "offload" and fast["time"]["bound"] == "compute"
    assert set(slow["time"]) >= {"step_seconds", "tokens_per_second", "tokens_per_second_per_gpu",
                                 "mfu", "bound", "run_seconds"}
    assert slow["time"]["run_seconds"] >= 10 * fast["time"]["run_seconds"]
    assert any("CPU offload makes this" in note for note in slow["time"]["notes"])  # in words
    # tokens/s and the run length agree with each other
    assert slow["time"]["run_seconds"] == pytest.approx(1e8 / slow["time"]["tokens_per_second"],
                                                        rel=1e-3)


def test_the_time_is_printed_beside_the_memory_and_offload_is_called_slower(run_cli):
    proc = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--strategy", "ddp",
                   "--tokens", "2B")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "tokens/s" in out and "to train 2,000,000,000 tokens: about" in out
    offload = [line for line in out.splitlines() if "CPU offload" in line]
    assert offload and "× slower" in offload[0]


@pytest.mark.parametrize("args, words", [
    (("--tokens", "-1"), "--tokens must be a positive number"),
    (("--steps", "many"), "--steps: cannot read 'many'"),
    (("--network", "400Gbpx", "--num-nodes", "2", "--num-gpus", "4", "--sharding",
      "HYBRID_SHARD"), "--network: cannot read '400Gbpx' as a network speed"),
    (("--tokens", "1e8", "--steps", "10"), "not both"),
    (("--network=0.000001Gbps", "--num-nodes", "2", "--num-gpus", "4"),  # was 24 years a step
     "--network must be from 10 Mbps to 100 Tbps (a machine's links to the others), got "
     "'0.000001Gbps'"),
    (("--network", "1e30Gbps", "--num-nodes", "2", "--num-gpus", "4"), "got '1e30Gbps'"),
])
def test_bad_training_length_or_network_is_one_line_and_exit_2(run_cli, args, words):
    proc = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and words in proc.stderr
    assert proc.stdout == ""


def test_an_unknown_gpu_is_not_timed(run_cli, tmp_path):
    box = tmp_path / "box.yaml"
    box.write_text("gpus:\n  - name: My custom card\n    memory_total: 48GiB\n    count: 2\n")
    proc = run_cli("estimate", "llama-3.2-1b", "--simulate", str(box), "--json")
    assert proc.returncode == 0, proc.stderr
    time = json.loads(proc.stdout)["time"]
    assert time["step_seconds"] is None and time["tokens_per_second"] is None
    assert "My custom card" in time["not_estimated"]
    # a preset without a published data sheet is not guessed either
    assert _time("2xA10G", model=resolve_model("gpt2")).reason == "no data-sheet figures for NVIDIA A10G"


def test_every_preset_but_the_one_without_a_data_sheet_finds_its_facts():
    missing = [key for key, p in PRESETS.items()
               if gpu_facts(p.name) is None or gpu_facts(key) is None
               or any(gpu_facts(a) is None for a in p.aliases)]
    assert missing == ["A10G"]
    for facts in all_gpu_facts().values():
        assert facts.source.count("https://") == 1 and facts.memory_bandwidth_gbs > 0
        assert facts.peak_flops("fp16") is not None


def test_nvml_names_find_their_facts():
    assert gpu_facts("NVIDIA H100 80GB HBM3").key == "H100-SXM"
    assert gpu_facts("NVIDIA A100-SXM4-80GB").key == "A100-SXM4-80GB"
    assert gpu_facts("Tesla V100-SXM2-32GB").key == "V100-SXM2-32GB"
    assert gpu_facts("NVIDIA GeForce RTX 4090").key == "RTX-4090"
    assert gpu_facts("NVIDIA A100-SXM4-80GB MIG 3g.40gb") is None  # a MIG slice: not the card


def test_no_bf16_on_the_data_sheet_means_no_bf16_time():
    t = _time("2xV100-32GB", model=resolve_model("gpt2"))
    assert not t.estimated and "bf16" in t.reason
    assert _time("2xV100-32GB", model=resolve_model("gpt2"), precision="fp16").estimated


def test_what_a_user_would_expect_of_the_hardware():
    base = _time("8xH100-80GB")
    # PCIe H100s gather FSDP's weights over PCIe instead of NVLink, and have fewer FLOPs
    pcie = _time("8xH100-PCIE")
    assert pcie.tokens_per_second < base.tokens_per_second
    # twice the GPUs with the same micro-batch: about twice the tokens per second (a little
    # more: each GPU's share of the optimizer step halves too)
    assert 1.6 < _time("16xH100-80GB").tokens_per_second / base.tokens_per_second < 2.2
    # activation checkpointing recomputes the forward: about a quarter to a third slower
    ckpt = _time("8xH100-80GB", activation_checkpointing=True)
    assert 1.15 < base.tokens_per_second / ckpt.tokens_per_second < 1.4
    # fp32 runs on the non-tensor-core rate
    assert _time("8xH100-80GB", precision="fp32").tokens_per_second < base.tokens_per_second / 5
    # the s² term: with the same tokens per micro-batch, a token at 8k context costs more
    long = _time("8xH100-80GB", seq_len=8192)
    assert long.tokens_per_second < _time("8xH100-80GB", batch_size=4).tokens_per_second


def test_several_machines_need_the_network_and_a_slower_one_costs_time():
    kw = dict(num_gpus=16, num_nodes=2, batch_size=16)
    unknown = _time("16xH100-80GB", **kw)
    assert not unknown.estimated and "network between them is unknown" in unknown.reason
    assert unknown.machines == 2
    # 32 GPUs said to be on one machine are more machines than that: the network counts
    one_box = _time("8xH100-80GB", num_gpus=32, batch_size=16)
    assert not one_box.estimated and "32 GPUs are 4 machines" in one_box.reason
    fast = _time("16xH100-80GB", network=parse_rate("3200Gbps"), **kw)
    slow = _time("16xH100-80GB", network=parse_rate("25Gbps"), **kw)
    assert slow.bound == "communication" and fast.bound == "compute"
    assert slow.step_seconds > 2 * fast.step_seconds
    hybrid = _time("16xH100-80GB", network=parse_rate("25Gbps"), sharding="HYBRID_SHARD", **kw)
    assert hybrid.step_seconds < slow.step_seconds  # only the gradient shard crosses machines


def test_suggestions_that_fit_are_ranked_by_time():
    gpus = parse_simulate("2xH100-80GB")
    est = estimate(LLAMA8, TrainConfig(strategy="ddp", num_gpus=2, precision="bf16", seq_len=2048),
                   gpu_memory=gpus[0].memory_total, available_gpus=2)
    current, ranked = time_plan(est, time_hardware(gpus), tokens=10**9, available_gpus=2)
    assert current.estimated and current.run_seconds == pytest.approx(1e9 / current.tokens_per_second,
                                                                      rel=1e-3)
    on_box = [t for t in ranked if t.suggestion.fits and t.suggestion.change.get("num_gpus", 2) <= 2
              and not t.suggestion.method_change]  # LoRA/QLoRA come after, as another method
    assert len(on_box) >= 2
    speeds = [t.time.tokens_per_second for t in on_box]
    assert speeds == sorted(speeds, reverse=True)
    assert on_box[0].slowdown == 1.0
    offload = [t for t in on_box if t.suggestion.change.get("offload_params")]
    assert offload and offload[0].slowdown > 10
    # a change that needs GPUs this box lacks comes after every one that fits on it
    beyond = [i for i, t in enumerate(ranked) if t.suggestion.change.get("num_gpus", 0) > 2]
    assert all(i > ranked.index(on_box[-1]) for i in beyond)


def test_rates_and_counts_as_people_write_them():
    assert parse_rate("400Gbps") == parse_rate("400 Gb/s") == parse_rate("50GB/s") == 50e9
    assert parse_rate("3.2Tbps") == 400e9
    assert parse_count("1e8", "--tokens") == parse_count("100_000_000", "--tokens") == 10**8
    assert parse_count("2B", "--tokens") == 2 * 10**9
    for bad in ("400", "fast", "-5Gbps"):
        with pytest.raises(UsageError):
            parse_rate(bad)


def test_the_readme_shows_what_the_talks_case_prints(run_cli):
    from tests.conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("$ trainwiz estimate llama-3-8b --simulate 2x4090 --strategy fsdp "
                         "--offload-params --tokens 1e8\n...\n", 1)[1].split("```", 1)[0]
    proc = run_cli("estimate", "llama-3-8b", "--simulate", "2x4090", "--strategy", "fsdp",
                   "--offload-params", "--tokens", "1e8")
    assert proc.returncode == 0, proc.stderr
    for line in block.strip().splitlines():
        assert line in proc.stdout.splitlines()


def test_a_run_directorys_gpu_records_time_the_same_as_the_probe():
    """The monitor compares measured tokens/s with this estimate from the run's GPU records."""
    gpus = parse_simulate("8xH100-80GB")
    cfg = TrainConfig(strategy="fsdp", num_gpus=8, precision="bf16", seq_len=2048)
    live = estimate_time(LLAMA8, cfg, time_hardware(gpus))
    stored = estimate_time(LLAMA8, cfg, time_hardware([g.to_json() for g in gpus]))
    assert stored.tokens_per_second_per_gpu == live.tokens_per_second_per_gpu


def test_lora_hooks_skip_weight_gradients_and_qlora_pays_for_dequantizing():
    """Branch ``lora`` adds ``TrainConfig.method``; the time model reads it when it is there."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class WithMethod(TrainConfig):
        method: str = "full"

    gpus = parse_simulate("1xH100-80GB")
    hw = time_hardware(gpus)

    def tps(method):
        cfg = WithMethod(method=method, precision="bf16", seq_len=2048, batch_size=4)
        return estimate_time(LLAMA8, cfg, hw).tokens_per_second

    full, lora, qlora = tps("full"), tps("lora"), tps("qlora")
    assert 1.2 < lora / full < 1.6  # backward: input gradients only (2 of 3 forward-sized passes)
    assert qlora < lora  # every pass dequantizes the 4-bit weights first


def test_a_suggestion_that_also_picks_gpus_is_timed_by_what_the_config_knows():
    from dataclasses import replace

    from trainwiz.estimator.types import Suggestion

    gpus = parse_simulate("4xH100-80GB")
    est = estimate(LLAMA8, TrainConfig(strategy="fsdp", num_gpus=4, precision="bf16", seq_len=2048),
                   gpu_memory=gpus[0].memory_total)
    two = Suggestion(change={"num_gpus": 2, "gpu_ids": [0, 1]}, total=1, note="GPUs 0 and 1")
    _, (timed,) = time_plan(replace(est, suggestions=(two,)), time_hardware(gpus))
    assert timed.time.estimated and timed.time.tokens_per_step == 2 * 2048


def test_a_run_takes_whole_steps_and_a_long_one_reads_in_years(run_cli):
    # one token still takes a whole step (it read "about 5.8e-06 s (1 steps)" beside 0.012 s a step)
    proc = run_cli("estimate", "gpt2", "--simulate", "1x4090", "--tokens", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    t = json.loads(proc.stdout)["time"]
    assert t["run_steps"] == 1 and t["run_seconds"] == pytest.approx(t["step_seconds"])
    text = run_cli("estimate", "gpt2", "--simulate", "1x4090", "--tokens", "1").stdout
    assert "to train 1 token: about " in text and "(1 step)" in text
    # the longest length accepted is said in years, not as a 20-digit count of days
    text = run_cli("estimate", "gpt2", "--simulate", "1x4090", "--tokens", "1e15").stdout
    line = next(x for x in text.splitlines() if x.startswith("to train"))
    assert line.split("about ")[1].split(" (")[0].endswith(" years") and "days" not in line
    assert len(line) < 80


def test_a_suggestion_on_more_machines_is_not_timed_without_the_network(run_cli):
    # "4 GPUs … — 2 machines × 2 GPUs" was timed as one machine of 4 (~32,300 tokens/s) though
    # two machines are not timed without --network (with 400Gbps they make ~4,000)
    args = ("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--strategy", "ddp")
    text = run_cli(*args).stdout
    line = next(x for x in text.splitlines() if "2 machines × 2 GPUs" in x)
    assert line.endswith("fits, time not estimated (network between machines unknown)"), line
    flags = text.splitlines()[text.splitlines().index(line) + 1]
    assert "--num-gpus 4" in flags and "--num-nodes 2" in flags  # its flags are that plan
    data = json.loads(run_cli(*args, "--json").stdout)
    more = next(s for s in data["suggestions"] if s["change"].get("num_gpus") == 4)
    assert more["change"]["num_nodes"] == 2 and more["time"]["tokens_per_second"] is None
    assert "network" in more["time"]["not_estimated"]
    timed = json.loads(run_cli(*args, "--network", "400Gbps", "--json").stdout)
    more = next(s for s in timed["suggestions"] if s["change"].get("num_gpus") == 4)
    assert 0 < more["time"]["tokens_per_second"] < 10_000
    # running the suggestion's own flags says the same, and names the option that gives it
    text = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--num-gpus", "4",
                   "--strategy", "fsdp", "--num-nodes", "2").stdout
    assert "time: not estimated (4 GPUs are 2 machines here and the network between them is " \
           "unknown: give it with --network (e.g. 400Gbps))" in text


def test_the_app_is_not_told_of_a_flag_it_lacks():
    # the app (and `profiles show`) have no network field: "not estimated", no "--network"
    from trainwiz.estimator.timing import summary_lines

    two = _time("2xH100-80GB", num_gpus=4, num_nodes=2)
    assert summary_lines(two) == ["time: not estimated (4 GPUs are 2 machines here and the "
                                  "network between them is unknown)"]
    assert "--network" in summary_lines(two, network_option="--network")[0]
