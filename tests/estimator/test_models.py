"""Where models come from: the catalog, config.json files, bare counts — exact parameter counts."""

from __future__ import annotations

import json

import pytest

from trainwiz.errors import UsageError
from trainwiz.estimator.catalog import catalog, model_from_hf_config, resolve_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _transformers_count(config: dict, arch: str | None = None) -> int:
    """Parameters of the real transformers model, built on the meta device (no weights)."""
    cfg = dict(config)
    cls = getattr(transformers, arch or cfg["architectures"][0])
    with torch.device("meta"):
        model = cls(transformers.AutoConfig.for_model(**cfg))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(catalog()))
def test_catalog_counts_are_exact(name):
    entry = catalog()[name]
    spec = resolve_model(name)
    assert spec.params == entry["params"] == _transformers_count(entry["config"])


def test_llama_3_8b_is_the_published_size():
    assert resolve_model("llama-3-8b").params == 8_030_261_248


@pytest.mark.parametrize("arch", [
    "LlamaForCausalLM", "LlamaForSequenceClassification", "LlamaModel",
])
def test_llama_heads_from_architectures(arch):
    cfg = {**catalog()["llama-3.2-1b"]["config"], "architectures": [arch], "num_labels": 3}
    assert model_from_hf_config(cfg).params == _transformers_count(cfg, arch)


@pytest.mark.parametrize("family,archs", [
    ("bert-base-cased", ["BertForMaskedLM", "BertForSequenceClassification", "BertModel"]),
    ("gpt2", ["GPT2LMHeadModel", "GPT2ForSequenceClassification", "GPT2Model"]),
    ("qwen2.5-0.5b", ["Qwen2ForCausalLM", "Qwen2ForSequenceClassification"]),
    ("phi-3-mini", ["Phi3ForCausalLM", "Phi3Model"]),
    ("mistral-7b", ["MistralForCausalLM", "MistralForSequenceClassification"]),
    ("gemma-2b", ["GemmaForCausalLM", "GemmaModel"]),
])
def test_heads_and_untied_variants(family, archs):
    base = catalog()[family]["config"]
    for arch in archs:
        for tie in (True, False):
            cfg = {**base, "architectures": [arch], "tie_word_embeddings": tie}
            assert model_from_hf_config(cfg).params == _transformers_count(cfg, arch), (arch, tie)


def test_biases_count(tmp_path):
    cfg = {**catalog()["llama-3.2-1b"]["config"], "attention_bias": True, "mlp_bias": True}
    assert model_from_hf_config(cfg).params == _transformers_count(cfg)


def test_reads_a_model_folder_without_transformers(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(catalog()["qwen2.5-7b"]["config"]))
    by_folder = resolve_model(str(folder))
    by_file = resolve_model(str(folder / "config.json"))
    assert by_folder.params == by_file.params == 7_615_616_512
    assert by_folder.name == "my-model" and by_folder.family == "qwen2"


def test_unknown_name_gets_a_did_you_mean():
    with pytest.raises(UsageError, match="Did you mean llama-3-8b"):
        resolve_model("lama-3-8b")


def test_malformed_config_names_file_and_line(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{\n  "model_type": "llama",\n  "hidden_size": 4096,,\n}')
    with pytest.raises(UsageError, match=r"config.json: not valid JSON \(line 3"):
        resolve_model(str(bad))


def test_unsupported_family_and_missing_fields_are_named(tmp_path):
    with pytest.raises(UsageError, match="model_type 't5' is not supported"):
        model_from_hf_config({"model_type": "t5"}, source="x/config.json")
    cfg = dict(catalog()["llama-3-8b"]["config"])
    del cfg["hidden_size"]
    with pytest.raises(UsageError, match="missing field 'hidden_size'"):
        model_from_hf_config(cfg, source="x/config.json")
