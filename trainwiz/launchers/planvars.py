"""The plan, handed to the training script: ``TRAINWIZ_*`` variables and ``{placeholders}``.

One table, :data:`PLAN_FIELDS`, says which plan field becomes which environment variable and
which placeholder; the README's table is this one. Every rank gets the variables (they go into
the launcher's environment and torchrun passes them on); the profile's script arguments may use
the placeholders, expanded at launch::

    script_args: [--per_device_train_batch_size, "{batch_size}",
                  --gradient_checkpointing, "{activation_checkpointing}"]

A placeholder the table does not know is an error that names it and the known ones; only
``{identifier}`` is a placeholder, so JSON in an argument passes untouched, and ``{{name}}``
stands for a literal ``{name}``. Fields whose value the profile does not hold (no ``estimate:``
section, no LoRA) are left out of the environment, and using their placeholder says so.

Pure: reads the profile's attributes, imports nothing outside the standard library and
``trainwiz.errors``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from trainwiz.errors import TrainwizError


def _bool(value) -> str:
    return "true" if value else "false"


def _est(profile, name: str, default=None):
    """A plan field from the profile's estimate inputs (or the profile itself), else default."""
    est = getattr(profile, "estimate", None)
    if est is not None and getattr(est, name, None) is not None:
        return getattr(est, name)
    value = getattr(profile, name, None)
    return default if value is None else value


def _lora(profile, name: str):
    """A LoRA setting of a LoRA/QLoRA plan (PEFT's defaults where the profile leaves it out:
    ``lora_options``; alpha left out is 2 x rank)."""
    if _est(profile, "method", "full") == "full":
        return None
    lora = _est(profile, "lora_options") or _est(profile, "lora")
    if lora is None:
        return None
    def get(key):
        return lora.get(key) if isinstance(lora, dict) else getattr(lora, key, None)
    value = get(name)
    if value is None and name == "alpha" and get("rank") is not None:
        value = 2 * get("rank")
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _has_plan(profile) -> bool:
    return getattr(profile, "estimate", None) is not None


def _precision(profile) -> str:
    return str(getattr(profile, "mixed_precision", None) or "no")


@dataclass(frozen=True)
class PlanField:
    placeholder: str  # {batch_size}
    env: str  # TRAINWIZ_BATCH_SIZE
    meaning: str  # one line for the README and the error message
    value: Callable  # profile -> str | None (None: the profile does not hold it)


def _plan_value(name: str, fmt=str):
    def get(profile):
        if not _has_plan(profile):
            return None
        value = _est(profile, name)
        return None if value is None else fmt(value)
    return get


PLAN_FIELDS: tuple[PlanField, ...] = (
    PlanField("batch_size", "TRAINWIZ_BATCH_SIZE", "per-GPU micro-batch (sequences)",
              _plan_value("batch_size")),
    PlanField("seq_len", "TRAINWIZ_SEQ_LEN", "sequence length (tokens)", _plan_value("seq_len")),
    PlanField("grad_accum", "TRAINWIZ_GRAD_ACCUM", "gradient accumulation steps",
              _plan_value("grad_accum")),
    PlanField("precision", "TRAINWIZ_PRECISION", "mixed precision: no, fp16, bf16 or fp8",
              _precision),
    PlanField("bf16", "TRAINWIZ_BF16", "true when the precision is bf16 (HF --bf16)",
              lambda p: _bool(_precision(p) == "bf16")),
    PlanField("fp16", "TRAINWIZ_FP16", "true when the precision is fp16 (HF --fp16)",
              lambda p: _bool(_precision(p) == "fp16")),
    PlanField("activation_checkpointing", "TRAINWIZ_ACTIVATION_CHECKPOINTING",
              "true or false (HF --gradient_checkpointing)",
              lambda p: _bool(_est(p, "activation_checkpointing") or (
                  getattr(p, "strategy", None) == "fsdp"
                  and getattr(getattr(p, "fsdp", None), "activation_checkpointing", False)))
              if _has_plan(p) else None),
    PlanField("optimizer", "TRAINWIZ_OPTIMIZER", "adamw, sgd, adafactor or adamw8bit",
              _plan_value("optimizer")),
    PlanField("steps", "TRAINWIZ_STEPS", "training length in optimizer steps (HF --max_steps), "
              "when the plan gives it in steps", _plan_value("steps")),
    PlanField("tokens", "TRAINWIZ_TOKENS", "training length in tokens, when the plan gives it "
              "in tokens", _plan_value("tokens")),
    PlanField("model", "TRAINWIZ_MODEL", "the model: catalog name, HF folder or config.json",
              _plan_value("model")),
    PlanField("method", "TRAINWIZ_METHOD", "full, lora or qlora",
              lambda p: str(_est(p, "method", "full")) if _has_plan(p) else None),
    PlanField("loop", "TRAINWIZ_LOOP", "custom or trainer (the loop the estimate assumed)",
              lambda p: str(_est(p, "loop", "custom")) if _has_plan(p) else None),
    PlanField("lora_rank", "TRAINWIZ_LORA_RANK", "LoRA rank r (LoRA plans only)",
              lambda p: _lora(p, "rank")),
    PlanField("lora_alpha", "TRAINWIZ_LORA_ALPHA", "LoRA alpha (LoRA plans only)",
              lambda p: _lora(p, "alpha")),
    PlanField("lora_dropout", "TRAINWIZ_LORA_DROPOUT", "LoRA dropout (LoRA plans only)",
              lambda p: _lora(p, "dropout")),
    PlanField("lora_targets", "TRAINWIZ_LORA_TARGETS",
              "LoRA target modules: all-linear or a comma list (LoRA plans only)",
              lambda p: _lora(p, "targets")),
    PlanField("run_dir", "TRAINWIZ_RUN_DIR",
              "the run directory (append metrics to $TRAINWIZ_RUN_DIR/metrics.jsonl)",
              lambda p: None),  # filled in at launch
)

KNOWN = tuple(f.placeholder for f in PLAN_FIELDS)
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_]\w*)\}\}|\{([A-Za-z_]\w*)\}")


def plan_values(profile, run_dir: str | None = None) -> dict[str, str]:
    """placeholder -> value for every field the profile holds (and the run directory)."""
    out = {}
    for f in PLAN_FIELDS:
        value = str(run_dir) if f.placeholder == "run_dir" and run_dir else f.value(profile)
        if value is not None:
            out[f.placeholder] = str(value)
    return out


def plan_env(profile, run_dir: str | None = None) -> dict[str, str]:
    """The ``TRAINWIZ_*`` variables every rank gets."""
    values = plan_values(profile, run_dir)
    return {f.env: values[f.placeholder] for f in PLAN_FIELDS if f.placeholder in values}


def placeholders_in(args: list[str]) -> list[str]:
    """The placeholder names the arguments use, in order."""
    return [m.group(2) for a in args for m in _PLACEHOLDER.finditer(a) if m.group(2) is not None]


def expand_args(args: list[str], profile, run_dir: str | None = None, *,
                where: str | None = None) -> list[str]:
    """The script arguments with every ``{name}`` replaced by the plan's value.

    Raises TrainwizError naming an unknown placeholder and the known ones, or a known one the
    profile holds no value for."""
    values = plan_values(profile, run_dir or "{run_dir}")
    where = where or f"profile '{getattr(profile, 'name', '?')}'"

    def sub(match: re.Match) -> str:
        if match.group(1) is not None:  # {{name}}: the literal text {name}
            return "{" + match.group(1) + "}"
        name = match.group(2)
        if name not in KNOWN:
            raise TrainwizError(f"{where}: script argument {match.string!r}: unknown placeholder "
                                f"{{{name}}}; known: " + ", ".join(f"{{{k}}}" for k in KNOWN)
                                + " (write {{name}} for a literal {name})")
        if name not in values:
            raise TrainwizError(f"{where}: script argument {match.string!r}: placeholder "
                                f"{{{name}}} has no value: the profile has no "
                                + ("LoRA settings" if name.startswith("lora_")
                                   else "estimate: section (model, batch_size, seq_len, ...)"))
        return values[name]

    return [_PLACEHOLDER.sub(sub, a) for a in args]


def readme_table() -> str:
    """The Markdown table of the fields (the README's, kept equal by a test)."""
    rows = ["| placeholder | environment variable | value |", "|---|---|---|"]
    rows += [f"| `{{{f.placeholder}}}` | `{f.env}` | {f.meaning} |" for f in PLAN_FIELDS]
    return "\n".join(rows)
