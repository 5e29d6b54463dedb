"""LoRA/QLoRA parameter counts are PEFT's own: every catalog model and every family's heads are
built (on the meta device: no memory, no weights) and wrapped with the real ``get_peft_model``;
trainwiz's trainable and total counts must equal ``get_nb_trainable_parameters()``."""

from __future__ import annotations

import pytest

from trainwiz.errors import UsageError
from trainwiz.estimator.adapters import adapted, module_names, resolve_targets
from trainwiz.estimator.catalog import catalog, model_from_hf_config, resolve_model
from validation.cases import bert_config, gemma_config, gpt2_config, llama_config, phi3_config, qwen2_config

FEW = {"llama": "q_proj,v_proj", "mistral": "q_proj,v_proj", "qwen2": "q_proj,v_proj",
       "gemma": "q_proj,v_proj", "gemma2": "q_proj,v_proj", "phi3": "qkv_proj",
       "gpt2": "c_attn", "bert": "query,value"}


def _peft_counts(cfg: dict, targets: str, rank: int) -> tuple[int, int]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM,
                              AutoModelForSequenceClassification)

    cfg = dict(cfg)
    arch = cfg["architectures"][0]
    hc = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    if arch.endswith("ForSequenceClassification"):
        auto, task = AutoModelForSequenceClassification, "SEQ_CLS"
    elif arch.endswith("ForMaskedLM"):
        auto, task = AutoModelForMaskedLM, None
    elif arch.endswith("Model"):
        auto, task = AutoModel, None
    else:
        auto, task = AutoModelForCausalLM, "CAUSAL_LM"
    with torch.device("meta"):
        model = auto.from_config(hc)
    kw = {"task_type": task} if task else {}
    tm = targets if targets == "all-linear" else targets.split(",")
    return get_peft_model(model, LoraConfig(r=rank, target_modules=tm, **kw)).get_nb_trainable_parameters()


@pytest.mark.parametrize("name", sorted(catalog()))
def test_catalog_counts_equal_peft(name):
    spec = resolve_model(name)
    cfg = catalog()[name]["config"]
    key = "n_layer" if spec.family == "gpt2" else "num_hidden_layers"
    L = spec.num_layers
    for targets, rank in (("all-linear", 16), (FEW[spec.family], 8)):
        a = adapted(spec, "lora", rank, targets)
        # PEFT on 1 and 2 blocks; every count is linear in the number of blocks, so this is
        # PEFT's count for the real depth (building 80 blocks, even on meta, is slow)
        one, two = (_peft_counts({**cfg, key: n}, targets, rank) for n in (1, 2))
        peft = tuple(c1 + (L - 1) * (c2 - c1) for c1, c2 in zip(one, two))
        assert (a.trainable, a.total) == peft, (name, targets)


def _variants():
    for fn in (llama_config, qwen2_config, gpt2_config, bert_config, phi3_config, gemma_config):
        cfg = fn(layers=2)
        arch = cfg["architectures"][0]
        base = {"gpt2": "GPT2Model", "bert": "BertModel"}.get(cfg["model_type"],
                                                                arch.replace("ForCausalLM", "Model"))
        seq = arch.replace("ForCausalLM", "").replace("LMHeadModel", "").replace("ForMaskedLM", "")
        for a in (arch, seq + "ForSequenceClassification", base):
            yield pytest.param({**cfg, "architectures": [a]}, id=a)


@pytest.mark.parametrize("cfg", _variants())
def test_every_head_counts_equal_peft(cfg):
    spec = model_from_hf_config(cfg)
    for targets in ("all-linear", FEW[spec.family]):
        a = adapted(spec, "lora", 8, targets)
        assert (a.trainable, a.total) == _peft_counts(cfg, targets, 8), targets


def test_llama_3_8b_lora_r16_all_linear_count():
    # the figure users compare with PEFT's print_trainable_parameters for Llama-3-8B
    a = adapted(resolve_model("llama-3-8b"), "lora", 16, "all-linear")
    per_layer = 16 * ((4096 + 4096) + 2 * (4096 + 1024) + (4096 + 4096) + 2 * (4096 + 14336)
                      + (14336 + 4096))
    assert a.trainable == 32 * per_layer == 41_943_040
    assert a.total == 8_030_261_248 + a.trainable


def test_targets_that_match_nothing_name_the_modules_the_model_has():
    spec = resolve_model("llama-3-8b")
    with pytest.raises(UsageError) as e:
        resolve_targets(spec, "q_proj,query")
    msg = str(e.value)
    assert "'query'" in msg and "q_proj" in msg and "down_proj" in msg and "\n" not in msg
    assert module_names(resolve_model("gpt2")) == ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj",
                                                  "lm_head"]


def test_peft_suffix_matching_and_rank_checks():
    spec = resolve_model("gpt2")
    assert len(resolve_targets(spec, "c_proj")) == 2  # attn.c_proj and mlp.c_proj, as PEFT
    assert [t.name for t in resolve_targets(spec, "mlp.c_proj")] == ["transformer.h.{i}.mlp.c_proj"]
    with pytest.raises(UsageError, match="at least 1"):
        adapted(spec, "lora", 0, "all-linear")
