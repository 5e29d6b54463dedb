"""The measurement harness behind the estimator's proof of accuracy.

These check the ground truth itself: that ``python -m validation measure`` really runs
a training step and books its memory the way the estimate-vs-measured report relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from trainwiz.estimator.types import TrainConfig
from validation.cases import CASES, CASES_BY_NAME, LOOPS, case_to_estimate_inputs
from validation.report import README_END, README_START, TOLERANCE, markdown, readme_summary, rows_from

MEASURED = REPO_ROOT / "validation" / "measured.json"


def _measure(names: list[str], out, env) -> dict:
    args = [sys.executable, "-m", "validation", "measure", "--json", str(out)]
    for n in names:
        args += ["--case", n]
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(n in proc.stdout for n in names)  # the table names every case
    return json.loads(out.read_text())["cases"]


def test_case_list_covers_the_promised_matrix():
    archs = {c.hf_config["architectures"][0] for c in CASES}
    assert {"LlamaForCausalLM", "GPT2LMHeadModel", "BertForMaskedLM",
            "Qwen2ForCausalLM"} <= archs
    assert {c.precision for c in CASES} == {"fp32", "bf16", "bf16-pure"}
    # bf16-pure under every strategy, and at least one deep model (the estimator's bulk path)
    assert {c.strategy for c in CASES if c.precision == "bf16-pure"} == {"single", "ddp", "fsdp"}
    assert any(c.hf_config.get("num_hidden_layers", c.hf_config.get("n_layer")) >= 12
               for c in CASES)
    assert {c.optimizer for c in CASES} == {"adamw", "sgd"}
    assert {c.activation_checkpointing for c in CASES} == {True, False}
    assert {c.hf_config.get("tie_word_embeddings") for c in CASES} == {True, False}
    assert {c.strategy for c in CASES} == {"single", "ddp", "fsdp"}
    assert {c.sharding for c in CASES if c.strategy == "fsdp"} == {"FULL_SHARD", "SHARD_GRAD_OP"}
    assert len(CASES_BY_NAME) == len(CASES)
    # CPU SDPA with attention dropout takes the math path (CUDA does not): never in an SDPA
    # case; eager attention with attention dropout is the same path on both, and is measured
    dropouts = {}
    for c in CASES:
        cfg = c.hf_config
        p = cfg.get("attention_dropout", cfg.get("attn_pdrop",
                    cfg.get("attention_probs_dropout_prob", 0.0)))
        dropouts[c.name] = p
        if c.attention == "sdpa":
            assert p == 0.0, c.name
    eager_families = {c.hf_config["model_type"] for c in CASES
                      if c.attention == "eager" and dropouts[c.name] > 0}
    assert {"gpt2", "bert", "llama"} <= eager_families


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_case_maps_to_estimator_inputs(case):
    assert [TrainConfig(**case_to_estimate_inputs(case, loop)[1]).loop for loop in LOOPS] == \
        ["custom", "trainer"]
    cfg, fields = case_to_estimate_inputs(case)
    tc = TrainConfig(**fields)
    assert cfg["architectures"] == case.hf_config["architectures"]
    assert (tc.strategy, tc.num_gpus, tc.batch_size, tc.seq_len) == (
        case.strategy, case.num_gpus, case.batch_size, case.seq_len)
    if case.strategy == "fsdp":
        assert tc.sharding == ("FULL_SHARD" if case.reshard_after_forward else "SHARD_GRAD_OP")


def test_committed_measurements_cover_every_case_in_both_loops():
    doc = json.loads(MEASURED.read_text())
    assert set(doc["cases"]) >= set(CASES_BY_NAME)
    for name, r in doc["cases"].items():
        assert "error" not in r, name
        assert set(r["loops"]) == set(LOOPS), name
        for loop in LOOPS:
            m = r["loops"][loop]
            assert m["peak_total"] == sum(m["peak_breakdown"].values()), (name, loop)
            assert m["peak_total"] == max(m["peak_by_phase"].values()), (name, loop)


def test_readme_and_docs_are_generated_from_the_committed_measurements():
    """The figures a reader sees are the ones the committed run gives: regenerate and compare."""
    doc = json.loads(MEASURED.read_text())
    rows = rows_from(doc["cases"])
    assert len(rows) == len(CASES) * len(LOOPS)
    assert all(r.ok for r in rows), [(r.name, r.problems) for r in rows if not r.ok]
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert block == readme_summary(rows)
    assert f"within {TOLERANCE:.0%} of the measured peak" in block
    assert (REPO_ROOT / "docs" / "validation.md").read_text() == markdown(rows, doc)


def test_single_process_step_books_params_optimizer_and_peak(tmp_path, isolated_env):
    (res,) = _measure(["qwen2-fp32-adamw"], tmp_path / "m.json", isolated_env).values()
    r = {**res, **res["loops"]["trainer"]}
    b = r["peak_breakdown"]
    assert b["Parameter"] == r["param_bytes"]  # tied embeddings counted once
    # AdamW: exp_avg + exp_avg_sq in fp32, plus a 4-byte `step` scalar per parameter tensor
    # (a CPU tensor, so on CUDA it is not in device memory)
    assert 0 <= b["Optstate"] - 2 * r["param_bytes"] < 4096
    assert r["peak_total"] == sum(b.values())
    assert r["peak_phase"] in ("forward", "backward", "optimizer")
    assert b["Activation"] + b["Temp"] > r["param_bytes"]  # activations are a real term here
    assert any("scaled_dot_product" in op for op in r["sdpa_ops"])
    # the custom loop keeps the logits (fp32 here) through backward: one more tensor that size
    custom = res["loops"]["custom"]
    logits = 2 * 256 * CASES_BY_NAME["qwen2-fp32-adamw"].hf_config["vocab_size"] * 4
    assert custom["peak_phase"] == r["peak_phase"] == "backward"
    assert custom["peak_breakdown"]["Activation"] - b["Activation"] == logits


def test_ddp_ranks_agree_and_buckets_are_counted(tmp_path, isolated_env):
    (r,) = _measure(["ddp-bert-mlm-fp32-sgd-ac"], tmp_path / "m.json", isolated_env).values()
    assert [x["rank"] for x in r["ranks"]] == [0, 1]
    assert r["rank_spread"] < 0.03
    buckets = r["ddp_buckets"]
    assert buckets["tracked_as_other_bytes"] == buckets["computed_bytes"] == r["param_bytes"]
    for loop in LOOPS:
        assert r["loops"][loop]["peak_breakdown"]["Other"] >= buckets["computed_bytes"]


def test_qlora_step_books_frozen_4bit_and_adapter_weights_as_the_estimate_does(tmp_path,
                                                                               isolated_env):
    """MemTracker refuses frozen parameters; the harness's tracker books them (and the NF4
    constants bitsandbytes keeps beside each 4-bit weight) as Parameter. Each part of the
    weights is then exactly what the estimate says, and the optimizer holds adapters only."""
    pytest.importorskip("peft")
    pytest.importorskip("bitsandbytes")
    from trainwiz.estimator.fit import estimate
    from trainwiz.estimator.catalog import model_from_hf_config

    case = CASES_BY_NAME["qlora-qwen2-adamw-qv"]
    (res,) = _measure([case.name], tmp_path / "m.json", isolated_env).values()
    cfg, fields = case_to_estimate_inputs(case, "trainer")
    est = estimate(model_from_hf_config(cfg), TrainConfig(**fields), suggestions=False)
    pg = est.per_gpu
    assert res["quantized_bytes"] == pg.quantized_params  # packed 4-bit + absmax + code tables
    assert res["frozen_bytes"] == pg.frozen_params  # fp32 embeddings, norms, head; bf16 biases
    assert res["trainable_bytes"] == pg.adapter_params
    assert (res["peft_trainable"], res["peft_total"]) == (est.trainable_params, est.total_params)
    b = res["loops"]["trainer"]["peak_breakdown"]
    assert b["Parameter"] == pg.params
    assert 0 <= b["Optstate"] - 2 * res["trainable_bytes"] < 4096  # AdamW on the adapters only


def test_lora_and_qlora_cases_cover_the_promised_matrix():
    peft_cases = [c for c in CASES if c.method != "full"]
    for method in ("lora", "qlora"):
        cases = [c for c in peft_cases if c.method == method]
        assert {c.strategy for c in cases} == {"single", "ddp"}, method
        assert {c.activation_checkpointing for c in cases} == {True, False}, method
    assert {c.hf_config["model_type"] for c in peft_cases} == {"llama", "qwen2"}
    assert {c.lora_targets for c in peft_cases} == {"all-linear", "q_proj,v_proj"}
    assert {c.lora_rank for c in peft_cases} == {8, 16}
    assert {c.precision for c in peft_cases if c.method == "lora"} == {"fp32", "bf16"}
    assert all(c.precision == "bf16" for c in peft_cases if c.method == "qlora")
    assert any(c.lora_dropout > 0 for c in peft_cases)
