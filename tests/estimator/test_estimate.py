"""The memory model's behaviour as a user would check it: what each option changes."""

from __future__ import annotations

import pytest

from trainwiz.errors import UsageError
from trainwiz.estimator.catalog import model_from_params, resolve_model
from trainwiz.estimator.fit import estimate
from trainwiz.estimator.types import TrainConfig

GiB = 1 << 30
LLAMA = resolve_model("llama-3-8b")


def est(model=LLAMA, gpu=80 * GiB, free=None, **kw):
    return estimate(model, TrainConfig(**kw), gpu_memory=gpu, gpu_free=free)


def test_breakdown_adds_up_to_the_peak():
    e = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=2, seq_len=4096)
    pg = e.per_gpu
    assert pg.params + pg.grads + pg.optimizer + pg.activations + pg.temporary == pg.peak_allocated
    assert pg.total == pg.peak_allocated + pg.overhead
    assert pg.overhead > 512 << 20  # CUDA context + NCCL at least


def test_single_gpu_adamw_fp32_is_at_least_16_bytes_per_parameter():
    e = est(strategy="single", precision="fp32", batch_size=1, seq_len=128)
    assert e.per_gpu.peak_allocated >= 16 * LLAMA.params
    assert e.verdict == "does not fit" and e.fits is False


def test_fsdp_shards_states_across_gpus():
    two = est(strategy="fsdp", num_gpus=2, batch_size=1, seq_len=512)
    eight = est(strategy="fsdp", num_gpus=8, batch_size=1, seq_len=512)
    assert eight.per_gpu.optimizer * 4 == pytest.approx(two.per_gpu.optimizer, rel=1e-3)
    assert eight.per_gpu.total < two.per_gpu.total


def test_shard_grad_op_keeps_more_than_full_shard():
    full = est(strategy="fsdp", num_gpus=8, sharding="FULL_SHARD", batch_size=1, seq_len=1024)
    grad_op = est(strategy="fsdp", num_gpus=8, sharding="SHARD_GRAD_OP", batch_size=1, seq_len=1024)
    # every block stays gathered (bf16) from forward to backward: ~2 bytes per parameter
    assert grad_op.per_gpu.peak_allocated - full.per_gpu.peak_allocated > 1.5 * LLAMA.params


def test_ddp_buckets_are_a_second_gradient_copy_unless_bucket_view():
    m = resolve_model("gpt2")
    plain = est(m, strategy="ddp", num_gpus=2, batch_size=1, seq_len=64)
    view = est(m, strategy="ddp", num_gpus=2, batch_size=1, seq_len=64, gradient_as_bucket_view=True)
    assert plain.per_gpu.peak_allocated - view.per_gpu.peak_allocated == 4 * m.params


def test_activation_checkpointing_and_batch_move_activations():
    base = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=4, seq_len=4096)
    ckpt = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=4, seq_len=4096,
               activation_checkpointing=True)
    small = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=1, seq_len=4096)
    assert ckpt.per_gpu.total < base.per_gpu.total / 2
    assert small.per_gpu.activations < base.per_gpu.activations / 3


def test_eager_attention_keeps_the_score_matrices():
    m = resolve_model("llama-3.2-1b")
    sdpa = est(m, batch_size=1, seq_len=4096, precision="bf16")
    eager = est(m, batch_size=1, seq_len=4096, precision="bf16", attention="eager")
    scores = m.num_heads * 4096 * 4096
    assert eager.per_gpu.peak_allocated - sdpa.per_gpu.peak_allocated > m.num_layers * scores * 4


def test_big_vocabulary_logits_are_counted():
    # llama-3's 128k vocabulary: fp32 log-softmax and its gradients dominate at long sequences
    e = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=1, seq_len=8192,
            activation_checkpointing=True)
    tokens_x_vocab = 8192 * LLAMA.vocab_size
    assert e.terms["peak_at"] == "loss backward"
    assert e.per_gpu.temporary >= 2 * 4 * tokens_x_vocab


def test_offload_moves_states_to_the_host():
    on = est(strategy="fsdp", num_gpus=2, batch_size=1, seq_len=512)
    off = est(strategy="fsdp", num_gpus=2, batch_size=1, seq_len=512, offload_params=True)
    assert off.per_gpu.optimizer == 0 and off.per_gpu.total < on.per_gpu.total / 3
    assert off.host_ram > on.host_ram + 16 * LLAMA.params * 0.9


def test_fused_and_8bit_optimizers():
    base = est(strategy="fsdp", num_gpus=2, batch_size=1, seq_len=128)
    fused = est(strategy="fsdp", num_gpus=2, batch_size=1, seq_len=128, fused_optimizer=True)
    eight = est(strategy="fsdp", num_gpus=2, batch_size=1, seq_len=128, optimizer="adamw8bit")
    assert base.terms["peak_at"] == "optimizer step"
    assert fused.per_gpu.total < base.per_gpu.total
    assert eight.per_gpu.optimizer < base.per_gpu.optimizer / 3


def test_busy_gpu_is_judged_against_free_memory():
    fits = est(strategy="fsdp", num_gpus=8, batch_size=1, seq_len=1024)
    busy = est(strategy="fsdp", num_gpus=8, batch_size=1, seq_len=1024, free=10 * GiB)
    assert fits.verdict in ("fits", "tight") and busy.verdict == "does not fit"


def test_suggestions_make_it_fit_and_say_by_how_much():
    e = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=8, seq_len=4096)
    assert e.verdict == "does not fit"
    assert e.suggestions and all(s.fits for s in e.suggestions)
    for s in e.suggestions:  # applying a suggestion gives the total it announced
        applied = estimate(LLAMA, e.config.with_changes(**s.change), gpu_memory=80 * GiB)
        assert applied.per_gpu.total == s.total <= 80 * GiB
        if "batch_size" in s.change:  # the global batch is kept
            assert s.change["batch_size"] * s.change["grad_accum"] == 8


def test_slow_suggestions_are_marked():
    e = est(strategy="single", precision="bf16", batch_size=1, seq_len=512, gpu=24 * GiB)
    offload = [s for s in e.suggestions if s.change.get("offload_params")]
    assert all(s.slower for s in offload)


def test_bare_parameter_count_says_what_it_cannot_estimate():
    e = est(model_from_params(7_000_000_000), batch_size=1)
    assert e.per_gpu.activations == 0
    assert any("activations" in n for n in e.notes)


@pytest.mark.parametrize("bad,match", [
    ({"batch_size": 0}, "batch-size must be a whole number of at least 1"),
    ({"strategy": "fsdp", "num_gpus": 1, "sharding": "SHARD_GRAD_OP"}, "needs at least 2 GPUs"),
    ({"strategy": "single", "num_gpus": 2}, "strategy single runs on one GPU"),
    ({"offload_params": True}, "needs --strategy fsdp"),
    ({"precision": "fp8"}, "precision must be one of fp32, fp16, bf16, bf16-pure"),
    ({"loop": "lightning"}, "loop must be one of custom, trainer"),
])
def test_impossible_configs_are_refused(bad, match):
    with pytest.raises(UsageError, match=match):
        est(**bad)


def test_bare_count_under_fsdp_shards_its_weights():
    bare = model_from_params(70_000_000_000)
    eight = est(bare, strategy="fsdp", num_gpus=8, batch_size=1)
    sixty_four = est(bare, strategy="fsdp", num_gpus=64, batch_size=1)
    assert sixty_four.per_gpu.params == pytest.approx(eight.per_gpu.params / 8, rel=1e-6)
    assert any("gathered blocks" in n for n in eight.notes)


def test_custom_loop_keeps_the_logits_through_backward():
    m = resolve_model("llama-3.2-1b")  # 128k vocabulary: the logits are the biggest tensor
    custom = est(m, precision="bf16", batch_size=2, seq_len=2048)
    trainer = est(m, precision="bf16", batch_size=2, seq_len=2048, loop="trainer")
    assert custom.config.loop == "custom"  # the default: the safe side for a fit verdict
    assert custom.terms["peak_at"] == trainer.terms["peak_at"] == "loss backward"
    logits_bf16 = 2 * 2048 * m.vocab_size * 2
    assert custom.per_gpu.peak_allocated - trainer.per_gpu.peak_allocated == logits_bf16
    assert custom.per_gpu.activations - trainer.per_gpu.activations == logits_bf16


def test_custom_loop_outputs_are_alive_in_the_optimizer_step():
    # tiny activations, big optimizer step: the previous outputs still count there
    m = resolve_model("llama-3.2-1b")
    custom = est(m, precision="fp32", batch_size=1, seq_len=64)
    trainer = est(m, precision="fp32", batch_size=1, seq_len=64, loop="trainer")
    assert custom.terms["peak_at"] == "optimizer step"
    assert custom.per_gpu.peak_allocated - trainer.per_gpu.peak_allocated == 64 * m.vocab_size * 4


def test_bf16_pure_keeps_weights_gradients_and_adam_state_in_bf16():
    m = resolve_model("llama-3.2-1b")
    pure = est(m, precision="bf16-pure", batch_size=1, seq_len=64, loop="trainer")
    mixed = est(m, precision="bf16", batch_size=1, seq_len=64, loop="trainer")
    assert pure.terms["peak_at"] == "optimizer step"
    assert pure.per_gpu.params == 2 * m.params
    assert pure.per_gpu.grads == 2 * m.params
    assert pure.per_gpu.optimizer == 4 * m.params  # exp_avg + exp_avg_sq, like the weights
    assert mixed.per_gpu.peak_allocated > 1.9 * pure.per_gpu.peak_allocated
    sgd = est(m, precision="bf16-pure", optimizer="sgd", batch_size=1, seq_len=64)
    assert sgd.per_gpu.optimizer == 2 * m.params


def test_bf16_pure_under_ddp_and_fsdp_halves_buckets_and_shards():
    m = resolve_model("gpt2")
    plain = est(m, precision="bf16-pure", strategy="ddp", num_gpus=2, batch_size=1, seq_len=64)
    view = est(m, precision="bf16-pure", strategy="ddp", num_gpus=2, batch_size=1, seq_len=64,
               gradient_as_bucket_view=True)
    assert plain.per_gpu.peak_allocated - view.per_gpu.peak_allocated == 2 * m.params
    fsdp = est(strategy="fsdp", num_gpus=8, precision="bf16-pure", batch_size=1, seq_len=128)
    mixed = est(strategy="fsdp", num_gpus=8, precision="bf16", batch_size=1, seq_len=128)
    assert fsdp.per_gpu.optimizer * 2 == pytest.approx(mixed.per_gpu.optimizer, rel=1e-6)
    assert fsdp.host_ram * 2 == mixed.host_ram  # the model is loaded in bf16


def test_dropping_the_outputs_is_suggested_with_what_it_saves():
    from trainwiz.units import format_bytes

    m = resolve_model("llama-3.2-1b")
    trainer = est(m, precision="bf16", batch_size=2, seq_len=2048, loop="trainer", gpu=80 * GiB)
    custom = est(m, precision="bf16", batch_size=2, seq_len=2048,
                 gpu=(trainer.per_gpu.total + 256 * (1 << 20)))
    assert custom.verdict == "does not fit"
    first = custom.suggestions[0]
    assert first.change == {"loop": "trainer"} and first.fits
    saved = format_bytes(custom.per_gpu.total - trainer.per_gpu.total)
    assert first.note == f"drop the outputs before backward (or use the HF Trainer): saves {saved}"
    # never offered to a loop that already drops them
    assert not any("loop" in s.change for s in est(m, precision="bf16", batch_size=2, seq_len=2048,
                                                  loop="trainer", gpu=8 * GiB).suggestions)


def test_a_combined_suggestion_says_what_the_whole_combination_saves():
    # it quoted the loop change's own 593.7 MiB beside "→ 144.9 GiB" from 178.7 GiB
    from trainwiz.units import format_bytes

    current = est(LLAMA, precision="bf16", batch_size=1, seq_len=2048, gpu=24 * GiB)
    paired = [s for s in current.suggestions if s.change.get("loop") == "trainer" and len(s.change) > 1]
    assert paired, [s.note for s in current.suggestions]
    for s in paired:
        assert s.note.endswith(f": saves {format_bytes(current.per_gpu.total - s.total)}"), s.note
        assert s.note.count("saves") == 1


@pytest.mark.parametrize("family,key", [("gpt2", "attn_pdrop"), ("bert", "attention_probs_dropout_prob"),
                                        ("llama", "attention_dropout")])
def test_eager_attention_dropout_keeps_the_mask_and_the_dropped_probabilities(family, key):
    from trainwiz.estimator.catalog import model_from_hf_config
    from validation.cases import bert_config, gpt2_config, llama_config

    cfg = {"gpt2": gpt2_config, "bert": bert_config, "llama": llama_config}[family]()
    with_dropout = model_from_hf_config({**cfg, key: 0.1})
    without = model_from_hf_config({**cfg, key: 0.0})
    assert with_dropout.attention_dropout == 0.1  # read from the config

    def peak(m, attention):
        return est(m, precision="fp32", batch_size=2, seq_len=256, attention=attention,
                   loop="trainer").per_gpu.activations

    scores = 2 * with_dropout.num_heads * 256 * 256
    layers = with_dropout.num_layers
    # fp32 eager: a bool mask (CUDA) and the dropped fp32 probabilities, per layer
    assert peak(with_dropout, "eager") - peak(without, "eager") == layers * scores * (1 + 4)
    assert peak(with_dropout, "sdpa") == peak(without, "sdpa")  # fused kernels keep none of it


def test_bf16_pure_bert_mlm_loss_runs_in_bf16_where_causal_lms_upcast():
    # BertForMaskedLM calls CrossEntropyLoss on its logits as they are; causal LMs upcast first
    bert, gpt2 = resolve_model("bert-base-cased"), resolve_model("gpt2")

    def loss_terms(m, precision):
        e = est(m, precision=precision, batch_size=8, seq_len=512, loop="trainer")
        return e.terms["tensors_at_peak"].get("head.loss.log_softmax"), e

    tokens = 8 * 512
    assert loss_terms(bert, "bf16-pure")[0] == tokens * bert.vocab_size * 2
    assert loss_terms(bert, "bf16")[0] == tokens * bert.vocab_size * 4  # autocast: fp32
    assert loss_terms(gpt2, "bf16-pure")[0] == tokens * gpt2.vocab_size * 4
