"""Where a ModelSpec comes from: the catalog, a Hugging Face config.json, or a bare count.

The config reader needs no transformers: it knows the parameter layout of the common families
(llama, mistral, qwen2, gemma, gemma2, gpt2, bert, phi3) and counts exactly — tied embeddings,
biases, norms, and the head named by ``architectures``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from trainwiz.errors import UsageError
from trainwiz.estimator.types import ModelSpec

FAMILIES = ("llama", "mistral", "qwen2", "gemma", "gemma2", "gpt2", "bert", "phi3")
_LLAMA_LIKE = ("llama", "mistral", "qwen2", "gemma", "gemma2", "phi3")

# Family defaults the config files often leave out (from each family's transformers config class).
_TIE_DEFAULT = {"llama": False, "mistral": False, "qwen2": False, "gemma": True, "gemma2": True,
                "gpt2": True, "bert": True, "phi3": False}


@lru_cache(maxsize=1)
def catalog() -> dict:
    """Catalog name -> {"params", "hf", "config"}; shipped as data beside this module."""
    with open(Path(__file__).with_name("catalog.json"), encoding="utf-8") as fh:
        return json.load(fh)


def catalog_names() -> list[str]:
    return sorted(catalog())


def resolve_model(spec: str) -> ModelSpec:
    """A catalog name, a Hugging Face model folder, or a config.json path -> ModelSpec."""
    spec = spec.strip()
    if not spec:
        raise UsageError("no model given: name one from the catalog (`trainwiz estimate --list`), "
                         "a Hugging Face model folder, a config.json, or use --params N")
    path = Path(spec).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise UsageError(f"{path}: no config.json in this folder (is it a Hugging Face model folder?)")
        return _from_config_file(config_path)
    if path.is_file():
        return _from_config_file(path)
    key = spec.lower()
    entries = catalog()
    if key in entries:
        entry = entries[key]
        return model_from_hf_config(entry["config"], name=key, source="catalog")
    if _HF_ID.match(spec):  # a Hugging Face model id: the local cache, then the catalog
        found = _from_hf_cache(spec) or _from_catalog_hf_id(spec)
        if found is not None:
            return found
        raise UsageError(f"{spec}: not a file or folder here, not in the Hugging Face cache "
                         f"({hf_hub_cache()}), and not a catalog model's id; download its "
                         "config.json (`huggingface-cli download ID config.json`) or give a path")
    if "/" in spec or spec.endswith(".json"):
        raise UsageError(f"{spec}: no such file or folder")
    close = difflib.get_close_matches(key, list(entries), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise UsageError(f"unknown model {spec!r}.{hint} Known models: {', '.join(sorted(entries))}; "
                     "or give a Hugging Face model folder, a config.json, or --params N.")


_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache as huggingface_hub finds it: $HF_HUB_CACHE, else
    $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub (~/.cache by default)."""
    env = os.environ
    if env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env.get("HF_HUB_CACHE") or env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "huggingface" / "hub"


def _from_hf_cache(model_id: str) -> ModelSpec | None:
    """A model's config.json in the hub cache (``models--ORG--NAME/snapshots/REV/``): the
    revision ``refs/main`` names, else the newest snapshot that has one. Offline: no network."""
    folder = hf_hub_cache() / ("models--" + model_id.replace("/", "--"))
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = []
    main = folder / "refs" / "main"
    if main.is_file():
        candidates.append(snapshots / main.read_text(encoding="utf-8").strip() / "config.json")
    candidates += sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime,
                         reverse=True)
    for config in candidates:
        if config.is_file():
            return replace(_from_config_file(config), name=model_id)
    return None


def _from_catalog_hf_id(model_id: str) -> ModelSpec | None:
    for key, entry in catalog().items():
        if str(entry.get("hf", "")).lower() == model_id.lower():
            return model_from_hf_config(entry["config"], name=key, source="catalog")
    return None


def model_from_params(params: int, name: str | None = None) -> ModelSpec:
    if params <= 0:
        raise UsageError(f"--params must be a positive number of parameters, got {params}")
    if params > MAX_PARAMS:
        raise UsageError(f"--params {_big(int(params))}: allowed: at most 10^15 parameters")
    return ModelSpec(name=name or f"{_human_count(params)}-parameter model", params=int(params),
                     source="params")


MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a config.json is a few KiB; weights are not read
MAX_FIELD = 2 ** 31  # any size field beyond this is not a model trainwiz can size
MAX_PARAMS = 10 ** 15


def _big(value) -> str:
    """A number for a message, without overflowing on ints beyond float range."""
    if isinstance(value, int) and abs(value) >= 10 ** 15:
        return f"about 10^{len(str(abs(value))) - 1}"
    return repr(value)


def _from_config_file(path: Path) -> ModelSpec:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise UsageError(f"{path}: larger than {MAX_CONFIG_BYTES // 2 ** 20} MiB; not a "
                             "Hugging Face config.json (not read)")
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except ValueError as exc:  # an integer of thousands of digits
        raise UsageError(f"{path}: not a usable config.json ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object (a Hugging Face config.json)")
    name = path.parent.name if path.name == "config.json" else path.stem
    spec = model_from_hf_config(data, name=name, source=str(path))
    if spec.params > MAX_PARAMS:
        raise UsageError(f"{path}: sizes to {_big(spec.params)} parameters; allowed: at most "
                         "10^15")
    return spec


def _get(cfg: dict, where: str, *keys: str, default=None, required: bool = True):
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    if default is not None or not required:
        return default
    raise UsageError(f"{where}: missing field {keys[0]!r} (needed to size the model)")


def _int(cfg: dict, where: str, *keys: str, default=None) -> int:
    value = _get(cfg, where, *keys, default=default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        shown = _big(value) if isinstance(value, int) and not isinstance(value, bool) else \
            repr(value)
        raise UsageError(f"{where}: field {keys[0]!r} must be a positive integer, got {shown}")
    if value > MAX_FIELD:
        raise UsageError(f"{where}: field {keys[0]!r} is {_big(value)}; allowed: at most "
                         f"{MAX_FIELD:,}")
    return value


def _float(cfg: dict, where: str, *keys: str, default: float = 0.0) -> float:
    value = _get(cfg, where, *keys, default=default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            -MAX_FIELD <= value <= MAX_FIELD):
        shown = _big(value) if isinstance(value, (int, float)) else repr(value)
        raise UsageError(f"{where}: field {keys[0]!r} must be a number of at most "
                         f"{MAX_FIELD:,}, got {shown}")
    return float(value)


def _head_from_architectures(archs, family: str) -> str:
    if not archs:
        return "masked_lm" if family == "bert" else "causal_lm"
    arch = str(archs[0])
    if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
        return "causal_lm"
    if arch.endswith("ForMaskedLM") or arch.endswith("ForPreTraining"):
        return "masked_lm"
    if arch.endswith("ForSequenceClassification"):
        return "seq_cls"
    if arch.endswith("Model"):
        return "base"
    raise UsageError(f"architecture {arch!r} is not supported: trainwiz sizes …ForCausalLM, "
                     "…LMHeadModel, …ForMaskedLM, …ForSequenceClassification and bare …Model heads")


def model_from_hf_config(cfg: dict, *, name: str = "model", source: str = "config.json") -> ModelSpec:
    """Exact parameter count and architecture from a config.json dict (no transformers)."""
    where = source
    family = cfg.get("model_type")
    if family not in FAMILIES:
        raise UsageError(f"{where}: model_type {family!r} is not supported yet "
                         f"(supported: {', '.join(FAMILIES)}); use --params N for a bare estimate")
    head = _head_from_architectures(cfg.get("architectures"), family)
    tie = bool(cfg.get("tie_word_embeddings", _TIE_DEFAULT[family]))
    num_labels = len(cfg["id2label"]) if isinstance(cfg.get("id2label"), dict) else int(cfg.get("num_labels", 2))

    if family in _LLAMA_LIKE:
        h = _int(cfg, where, "hidden_size")
        layers = _int(cfg, where, "num_hidden_layers")
        heads = _int(cfg, where, "num_attention_heads")
        kv = _int(cfg, where, "num_key_value_heads", default=heads)
        if "head_dim" not in cfg and h % heads:
            raise UsageError(f"{where}: hidden_size {h} is not a multiple of num_attention_heads "
                             f"{heads} (and no head_dim is given)")
        if heads % kv:
            raise UsageError(f"{where}: num_attention_heads {heads} is not a multiple of "
                             f"num_key_value_heads {kv}")
        head_dim = _int(cfg, where, "head_dim", default=h // heads)
        f = _int(cfg, where, "intermediate_size")
        vocab = _int(cfg, where, "vocab_size")
        q_dim, kv_dim = heads * head_dim, kv * head_dim
        attn_bias = bool(cfg.get("attention_bias", False))
        mlp_bias = bool(cfg.get("mlp_bias", False))
        if family == "phi3":
            attn = h * (q_dim + 2 * kv_dim) + q_dim * h
            mlp = h * 2 * f + f * h
            norms = 2 * h
        else:
            attn = h * q_dim + 2 * h * kv_dim + q_dim * h
            if family == "qwen2":  # q, k, v carry a bias, o does not
                attn += q_dim + 2 * kv_dim
            elif attn_bias:
                attn += q_dim + 2 * kv_dim + h
            mlp = 3 * h * f + (2 * f + h if mlp_bias else 0)
            norms = (4 if family == "gemma2" else 2) * h
        per_layer = attn + mlp + norms
        embed = vocab * h
        total = embed + layers * per_layer + h  # + final norm
        total += _head_params(head, h, vocab, tie, num_labels, family)
        return ModelSpec(
            name=name, params=total, family=family, head=head, hidden_size=h, num_layers=layers,
            num_heads=heads, num_kv_heads=kv, head_dim=head_dim, intermediate_size=f,
            vocab_size=vocab, max_position=cfg.get("max_position_embeddings"),
            tie_embeddings=tie, num_labels=num_labels,
            attention_dropout=_float(cfg, where, "attention_dropout"),
            final_logit_softcapping=cfg.get("final_logit_softcapping"), source=source,
            embedding_params=embed, layer_params=per_layer,
        )

    if family == "gpt2":
        h = _int(cfg, where, "n_embd", "hidden_size")
        layers = _int(cfg, where, "n_layer", "num_hidden_layers")
        heads = _int(cfg, where, "n_head", "num_attention_heads")
        f = cfg.get("n_inner") or 4 * h
        vocab = _int(cfg, where, "vocab_size")
        positions = _int(cfg, where, "n_positions", "max_position_embeddings")
        per_layer = (2 * h) + (h * 3 * h + 3 * h) + (h * h + h) + (2 * h) + (h * f + f) + (f * h + h)
        embed = vocab * h + positions * h
        total = embed + layers * per_layer + 2 * h  # + ln_f
        total += _head_params(head, h, vocab, tie, num_labels, family)
        return ModelSpec(
            name=name, params=total, family=family, head=head, hidden_size=h, num_layers=layers,
            num_heads=heads, num_kv_heads=heads, head_dim=h // heads, intermediate_size=f,
            vocab_size=vocab, max_position=positions, tie_embeddings=tie, num_labels=num_labels,
            attention_dropout=_float(cfg, where, "attn_pdrop", default=0.1),
            hidden_dropout=_float(cfg, where, "resid_pdrop", default=0.1),
            embedding_dropout=_float(cfg, where, "embd_pdrop", default=0.1), source=source,
            embedding_params=embed, layer_params=per_layer,
        )

    # bert
    h = _int(cfg, where, "hidden_size")
    layers = _int(cfg, where, "num_hidden_layers")
    heads = _int(cfg, where, "num_attention_heads")
    f = _int(cfg, where, "intermediate_size")
    vocab = _int(cfg, where, "vocab_size")
    positions = _int(cfg, where, "max_position_embeddings", default=512)
    types = _int(cfg, where, "type_vocab_size", default=2)
    per_layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    embed = vocab * h + positions * h + types * h + 2 * h
    total = embed + layers * per_layer
    if head == "masked_lm":  # transform (dense + LayerNorm) + decoder bias; decoder weight tied
        total += (h * h + h) + 2 * h + vocab + (0 if tie else vocab * h + vocab)  # untied: own bias too
    elif head == "seq_cls":  # pooler + classifier
        total += (h * h + h) + (h * num_labels + num_labels)
    elif head == "base":  # BertModel keeps its pooler
        total += h * h + h
    return ModelSpec(
        name=name, params=total, family=family, head=head, hidden_size=h, num_layers=layers,
        num_heads=heads, num_kv_heads=heads, head_dim=h // heads, intermediate_size=f,
        vocab_size=vocab, max_position=positions, tie_embeddings=tie, num_labels=num_labels,
        attention_dropout=_float(cfg, where, "attention_probs_dropout_prob", default=0.1),
        hidden_dropout=_float(cfg, where, "hidden_dropout_prob", default=0.1),
        embedding_dropout=_float(cfg, where, "hidden_dropout_prob", default=0.1), source=source,
        embedding_params=embed, layer_params=per_layer,
    )


def _head_params(head: str, h: int, vocab: int, tie: bool, num_labels: int, family: str) -> int:
    if head == "causal_lm" or head == "masked_lm":
        return 0 if tie else vocab * h
    if head == "seq_cls":  # score = Linear(h, num_labels, bias=False)
        return h * num_labels
    return 0


def _human_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)
