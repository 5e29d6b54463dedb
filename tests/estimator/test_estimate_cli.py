"""`trainwiz estimate` as scripts and users call it: the JSON contract, the tables, bad input."""

from __future__ import annotations

import json

import pytest

GiB = 1 << 30


def test_json_contract(run_cli):
    proc = run_cli("estimate", "llama-3-8b", "--strategy", "fsdp", "--num-gpus", "2",
                   "--gpu-memory", "80GiB", "--precision", "bf16", "--batch-size", "2",
                   "--seq-len", "2048", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == {"name": "llama-3-8b", "params": 8030261248, "family": "llama",
                             "source": "catalog", "trainable_params": 8030261248,
                             "total_params": 8030261248}
    assert data["config"]["strategy"] == "fsdp" and data["config"]["num_gpus"] == 2
    per_gpu = data["per_gpu"]
    assert set(per_gpu) == {"params", "grads", "optimizer", "activations", "temporary",
                            "peak_allocated", "overhead", "total",
                            "frozen_params", "quantized_params", "adapter_params"}
    assert per_gpu["frozen_params"] == per_gpu["quantized_params"] == per_gpu["adapter_params"] == 0
    assert all(isinstance(v, int) for v in per_gpu.values())
    assert per_gpu["total"] == per_gpu["peak_allocated"] + per_gpu["overhead"]
    assert data["gpu_memory"] == 80 * GiB
    assert isinstance(data["host"]["ram"], int)
    assert data["fits"] is (per_gpu["total"] <= 80 * GiB)
    for s in data["suggestions"]:
        assert set(s) >= {"change", "total", "note"} and isinstance(s["total"], int)


def test_gpu_memory_defaults_to_the_simulated_box(run_cli):
    proc = run_cli("estimate", "llama-3-8b", "--simulate", "8xH100-80GB", "--json")
    data = json.loads(proc.stdout)
    # the plan model's start, as in the app: DDP on several GPUs (the suggestions price FSDP)
    assert data["config"]["num_gpus"] == 8 and data["config"]["strategy"] == "ddp"
    assert 79 * GiB < data["gpu_memory"] <= 80 * GiB
    env_proc = run_cli("estimate", "llama-3-8b", "--json", env={"TRAINWIZ_SIMULATE": "2x4090"})
    assert json.loads(env_proc.stdout)["config"]["num_gpus"] == 2


def test_human_output_says_the_verdict_and_what_makes_it_fit(run_cli):
    proc = run_cli("estimate", "llama-3-8b", "--num-gpus", "2", "--gpu-memory", "24GiB",
                   "--batch-size", "4", "--seq-len", "4096")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "does not fit" in out and "What would make it fit" in out
    assert "peak allocated" in out and "8,030,261,248 parameters" in out


def test_params_only_says_what_is_missing(run_cli):
    proc = run_cli("estimate", "--params", "7e9", "--gpu-memory", "80GiB", "--json")
    data = json.loads(proc.stdout)
    assert data["model"]["params"] == 7_000_000_000
    # not estimated is null, never 0 (it read "activations": 0 and "activations 0 B")
    assert data["per_gpu"]["activations"] is None and data["not_estimated"] == ["activations"]
    assert data["per_gpu"]["total"] > 0
    assert any("activations" in note for note in data["notes"])
    text = run_cli("estimate", "--params", "7e9", "--gpu-memory", "80GiB").stdout
    row = next(line for line in text.splitlines() if line.startswith("activations"))
    assert row.split() == ["activations", "unknown"]
    assert "must fit (at least)" in text
    # a model whose layers are known has no unknown row
    known = json.loads(run_cli("estimate", "gpt2", "--gpu-memory", "80GiB", "--json").stdout)
    assert known["per_gpu"]["activations"] > 0 and known["not_estimated"] == []


def test_params_only_table_has_no_largest_layer(run_cli):
    # "Largest Layer 26.08 GB" was the whole 7B model: the layers of a bare count are unknown
    proc = run_cli("estimate", "--params", "7e9", "--table", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "Largest Layer" in line)
    assert row.split()[2:] == ["unknown"] * 4
    assert "26.08 GB" in next(line for line in proc.stdout.splitlines() if "Total Size" in line)


@pytest.mark.parametrize("args,message", [
    (["lama-3-8b"], "Did you mean llama-3-8b"),
    (["llama-3-8b", "--batch-size", "0"], "--batch-size: must be a whole number of at least 1"),
    # 0 was silently replaced by the default length (2048) and exited 0
    (["gpt2", "--seq-len", "0"], "--seq-len: must be a whole number of at least 1, got '0'"),
    (["gpt2", "--grad-accum", "1.5"], "--grad-accum: must be a whole number of at least 1"),
    # 4 GPUs cannot be 3 machines of the same size (it was reported as 4 machines)
    (["gpt2", "--num-nodes", "3", "--num-gpus", "4"], "give a multiple of 3"),
    # a LoRA rank with full fine-tuning was silently ignored
    (["gpt2", "--lora-rank", "8"], "--lora-rank only applies to LoRA adapters: add --method lora"),
    (["gpt2", "--lora-targets", "q_proj"], "--lora-targets only applies to LoRA adapters"),
    # a fraction of a token was truncated to 1; 1e30 printed a 31-digit count and 1e20 days
    (["gpt2", "--tokens", "1.5"], "--tokens must be a whole number from 1 to 1e15"),
    (["gpt2", "--tokens", "1e30"], "--tokens must be a whole number from 1 to 1e15"),
    (["llama-3-8b", "--gpu-memory", "-5GiB"], "--gpu-memory"),
    (["llama-3-8b", "--gpu-memory", "lots"], "cannot read 'lots' as a size"),
    (["llama-3-8b", "--strategy", "fsdp", "--num-gpus", "1", "--sharding", "SHARD_GRAD_OP"],
     "needs at least 2 GPUs"),
    (["--params", "-3"], "must be positive"),
    (["gpt2", "--num-gpus", "0"], "--num-gpus: must be a whole number of at least 1"),
    ([], "name a model"),
])
def test_bad_input_exits_2_with_a_clear_message(run_cli, args, message):
    proc = run_cli("estimate", *args, "--gpu-memory", "80GiB") if "--gpu-memory" not in args \
        else run_cli("estimate", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_config_json_exits_2(run_cli, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    proc = run_cli("estimate", str(tmp_path / "config.json"))
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr


def _cells(line: str) -> list[str]:
    import re

    return [c for c in re.split(r"\s{2,}", line.strip()) if c]


def test_accelerate_table_matches_the_published_numbers(run_cli):
    proc = run_cli("estimate", "bert-base-cased", "--table", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = {cells[0]: cells[1:] for cells in map(_cells, proc.stdout.splitlines())
            if cells and cells[0] in ("float32", "float16")}
    # accelerate estimate-memory / the Model Memory Calculator for bert-base-cased
    assert rows["float32"][1:] == ["413.18 MB", "413.18 MB", "413.18 MB", "826.36 MB",
                                   "1.61 GB", "1.61 GB"]
    assert rows["float16"][2:5] == ["413.18 MB", "619.77 MB", "826.36 MB"]


def test_accelerate_table_turns_on_narrow_terminals(run_cli):
    proc = run_cli("estimate", "bert-base-cased", "--table", env={"COLUMNS": "80"})
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {cells[0]: cells[1:] for cells in map(_cells, lines) if cells}
    assert rows["Training using Adam"][:2] == ["1.61 GB", "826.36 MB"]


@pytest.mark.parametrize("name", ["bert-base-cased", "gpt2", "llama-3-8b", "qwen2.5-0.5b",
                                  "gemma-2-2b", "phi-3-mini"])
def test_accelerate_table_equals_accelerates_own_functions(name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes

    from trainwiz.estimator.accelerate_rule import model_size, training_usage
    from trainwiz.estimator.catalog import catalog, resolve_model

    cfg = transformers.AutoConfig.for_model(**catalog()[name]["config"])
    with torch.device("meta"):
        bare = transformers.AutoModel.from_config(cfg)  # what accelerate sizes
    total, largest = calculate_maximum_sizes(bare)
    ours_total, ours_largest = model_size(resolve_model(name))
    assert (ours_total, ours_largest) == (total, largest[0])
    for dtype in ("float32", "float16"):
        assert training_usage(ours_total, dtype) == estimate_training_usage(total, dtype)


def test_list_shows_the_catalog(run_cli):
    proc = run_cli("estimate", "--list", env={"COLUMNS": "200"})
    assert proc.returncode == 0
    assert "llama-3-8b" in proc.stdout and "8,030,261,248" in proc.stdout


def test_gpus_without_bf16_default_to_fp16(run_cli):
    v100 = json.loads(run_cli("estimate", "gpt2", "--simulate", "2xV100-32GB", "--json").stdout)
    assert v100["config"]["precision"] == "fp16" and not any("bf16" in n for n in v100["notes"])
    forced = json.loads(run_cli("estimate", "gpt2", "--simulate", "2xV100-32GB", "--precision",
                                "bf16", "--json").stdout)
    assert any("has no bf16" in note for note in forced["notes"])
    h100 = json.loads(run_cli("estimate", "gpt2", "--simulate", "2xH100-80GB", "--json").stdout)
    assert h100["config"]["precision"] == "bf16"


def test_a_mixed_box_is_named_and_sized_for_its_smallest_gpu(run_cli):
    proc = run_cli("estimate", "llama-3.2-3b", "--simulate", "4xA100-80GB+4xL4",
                   env={"COLUMNS": "200"})
    assert "4× NVIDIA A100-SXM4-80GB, 4× NVIDIA L4; sized for the smallest" in proc.stdout
    data = json.loads(run_cli("estimate", "llama-3.2-3b", "--simulate", "4xA100-80GB+4xL4",
                              "--json").stdout)
    assert data["gpu_memory"] == min(g["memory_total"] for g in data["gpus"])


def test_loop_and_bf16_pure_options(run_cli):
    base = ("estimate", "llama-3.2-1b", "--gpu-memory", "80GiB", "--batch-size", "2", "--json")
    custom = json.loads(run_cli(*base).stdout)
    trainer = json.loads(run_cli(*base, "--loop", "trainer").stdout)
    pure = json.loads(run_cli(*base, "--precision", "bf16-pure").stdout)
    assert custom["config"]["loop"] == "custom" and trainer["config"]["loop"] == "trainer"
    assert custom["per_gpu"]["peak_allocated"] > trainer["per_gpu"]["peak_allocated"]
    assert pure["config"]["precision"] == "bf16-pure"
    assert pure["per_gpu"]["params"] * 2 == custom["per_gpu"]["params"]
    text = run_cli("estimate", "llama-3.2-1b", "--gpu-memory", "80GiB", "--precision", "bf16-pure")
    assert "bf16 pure" in text.stdout and "loop: custom (outputs kept through backward" in text.stdout
    text = run_cli("estimate", "llama-3.2-1b", "--gpu-memory", "80GiB", "--loop", "trainer")
    assert "loop: trainer (outputs dropped before backward" in text.stdout
    bad = run_cli("estimate", "llama-3.2-1b", "--loop", "keras")
    assert bad.returncode == 2 and "--loop" in bad.stderr and "custom" in bad.stderr


def test_params_only_never_claims_fits(run_cli):
    """With only a parameter count the total is a lower bound: within the GPU it "may fit"
    (the suggestions said "fits" and --json "fits": true against a bound that leaves out the
    activations); beyond the GPU it still does not fit."""
    args = ("estimate", "--params", "7e9", "--simulate", "1xH100-80GB")
    text = run_cli(*args).stdout
    lines = [line for line in text.splitlines() if " → " in line]
    assert lines and all("may fit (activations unknown)" in line for line in lines), text
    assert not any(", fits" in line for line in lines)
    data = json.loads(run_cli(*args, "--json").stdout)
    assert data["verdict"] == "does not fit" and data["fits"] is False
    assert data["suggestions"]
    for s in data["suggestions"]:
        assert s["fits"] is None and s["verdict"] == "may fit", s
        assert s["not_estimated"] == ["activations"]
    small = json.loads(run_cli("estimate", "--params", "1e9", "--simulate", "1xH100-80GB",
                               "--json").stdout)
    assert small["verdict"] == "may fit" and small["fits"] is None
    assert "may fit: needs" in run_cli("estimate", "--params", "1e9", "--simulate",
                                       "1xH100-80GB").stdout
    # with the layers known the verdict is still "fits"
    gpt2 = json.loads(run_cli("estimate", "gpt2", "--simulate", "1xH100-80GB", "--json").stdout)
    assert gpt2["verdict"] == "fits" and gpt2["fits"] is True
