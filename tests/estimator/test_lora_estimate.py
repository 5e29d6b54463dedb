"""LoRA and QLoRA as a user meets them: `trainwiz estimate --method lora|qlora`, what it says,
and the memory terms that differ from full fine-tuning."""

from __future__ import annotations

import json

import pytest

from trainwiz.estimator.adapters import adapted, nf4_bytes
from trainwiz.estimator.fit import estimate
from trainwiz.estimator.catalog import resolve_model
from trainwiz.estimator.types import TrainConfig

GiB = 1 << 30


def test_qlora_fits_llama_3_8b_on_one_4090_and_full_fine_tuning_suggests_it(run_cli):
    proc = run_cli("estimate", "llama-3-8b", "--method", "qlora", "--lora-rank", "16",
                   "--lora-targets", "all-linear", "--precision", "bf16",
                   "--activation-checkpointing", "--simulate", "1x4090", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["fits"] is True
    assert data["model"]["params"] == 8_030_261_248
    assert data["model"]["trainable_params"] == 41_943_040  # PEFT: r16 on all 7 linears x 32
    assert data["model"]["total_params"] == 8_030_261_248 + 41_943_040
    pg = data["per_gpu"]
    assert pg["quantized_params"] > 0 and pg["adapter_params"] == 4 * 41_943_040
    assert pg["params"] == pg["frozen_params"] + pg["quantized_params"] + pg["adapter_params"]

    full = run_cli("estimate", "llama-3-8b", "--precision", "bf16", "--simulate", "1x4090",
                   "--json")
    sug = json.loads(full.stdout)["suggestions"]
    qlora = [s for s in sug if s["change"].get("method") == "qlora"]
    assert qlora and qlora[0]["fits"] and qlora[0]["method_change"]
    human = run_cli("estimate", "llama-3-8b", "--precision", "bf16", "--simulate", "1x4090",
                    env={"COLUMNS": "200"}).stdout
    assert "change of method: QLoRA" in human
    assert "whether that quality is enough for your task is your call" in human


def test_the_table_shows_frozen_quantized_and_adapter_weights(run_cli):
    proc = run_cli("estimate", "llama-3-8b", "--method", "qlora", "--simulate", "1x4090",
                   env={"COLUMNS": "200"})
    out = proc.stdout
    assert "trainable params: 41,943,040 || all params: 8,072,204,288 || trainable%: 0.5196" in out
    for row in ("frozen weights", "4-bit weights (NF4)", "LoRA adapters"):
        assert row in out
    # QLoRA's recipe turns checkpointing on; without the flag the estimate says so
    assert "prepare_model_for_kbit_training turns it on" in out


@pytest.mark.parametrize("args,message", [
    (["--method", "lora", "--lora-rank", "0"], "--lora-rank: must be a whole number of at least 1"),
    (["--method", "lora", "--lora-targets", "q_proj,query"],
     "'query' matches no linear layer of this llama model; its linear layers are q_proj, k_proj"),
    (["--method", "qlora", "--precision", "fp32"], "QLoRA computes in bf16 or fp16"),
])
def test_bad_lora_input_is_one_line_and_exit_2(run_cli, args, message):
    proc = run_cli("estimate", "llama-3-8b", *args, "--gpu-memory", "24GiB")
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _est(name="llama-3-8b", **kw):
    return estimate(resolve_model(name), TrainConfig(**kw), suggestions=False)


def test_frozen_base_has_no_gradients_or_optimizer_state_beyond_the_adapters():
    full = _est(precision="bf16", loop="trainer", batch_size=8, seq_len=4096)
    lora = _est(precision="bf16", loop="trainer", method="lora", batch_size=8, seq_len=4096)
    a = adapted(resolve_model("llama-3-8b"), "lora", 16, "all-linear")
    assert lora.per_gpu.optimizer == 8 * a.trainable  # AdamW: two fp32 states per adapter value
    assert lora.per_gpu.grads <= 4 * a.trainable
    assert lora.per_gpu.frozen_params == 4 * 8_030_261_248
    assert lora.per_gpu.activations < full.per_gpu.activations  # frozen layers keep no inputs
    assert lora.per_gpu.peak_allocated < full.per_gpu.peak_allocated


def test_ddp_buckets_hold_only_the_adapters_and_fsdp_shards_the_frozen_base():
    ddp = _est(strategy="ddp", num_gpus=2, precision="bf16", method="lora", loop="trainer")
    single = _est(precision="bf16", method="lora", loop="trainer")
    a = adapted(resolve_model("llama-3-8b"), "lora", 16, "all-linear")
    assert ddp.per_gpu.grads - single.per_gpu.grads == 4 * a.trainable
    fsdp = _est(strategy="fsdp", num_gpus=4, precision="bf16", method="lora", loop="trainer")
    assert fsdp.per_gpu.frozen_params < single.per_gpu.frozen_params / 3


def test_nf4_double_quant_storage():
    # 4096 x 4096: 8 MiB of packed 4-bit values, 8-bit absmax per 64, fp32 per 256 absmax,
    # the offset and the two code tables (256 + 16 fp32)
    n = 4096 * 4096
    assert nf4_bytes(n) == n // 2 + n // 64 + 4 * (n // 64 // 256) + 4 + 4 * 256 + 4 * 16
    assert nf4_bytes(n, double_quant=False) == n // 2 + 4 * (n // 64) + 4 * 16
    # about 4.13 bits per weight with double quantization (the QLoRA paper: 4.127)
    assert 4.12 < 8 * nf4_bytes(n) / n < 4.14


def test_bf16_pure_keeps_the_unquantized_weights_and_the_adapters_in_bf16():
    # LitGPT's bf16-true and torchtune's recipes: no upcast of what NF4 leaves alone
    model = resolve_model("llama-3-8b")
    a = adapted(model, "qlora", 16, "all-linear")
    pure = _est(precision="bf16-pure", method="qlora", loop="trainer")
    mixed = _est(precision="bf16", method="qlora", loop="trainer")
    assert pure.per_gpu.frozen_params == 2 * (model.params - a.quantized_weight_params)
    assert mixed.per_gpu.frozen_params == 4 * (model.params - a.quantized_weight_params)
    assert pure.per_gpu.adapter_params == 2 * a.trainable == mixed.per_gpu.adapter_params // 2
    assert pure.per_gpu.quantized_params == mixed.per_gpu.quantized_params
