"""The wizard's form, generated from one field table.

Each row of ``FIELDS`` is one choice the user makes about the plan: the widget id, the key of the
plan change it makes (a ``TrainConfig`` field or a ``Plan`` key such as ``machines``), its label,
the values offered (which may depend on the plan: GPUs per machine go up to what a machine has),
how values are shown, and when the row is shown. A new setting is one more entry here; the form
posts ``PlanForm.Changed(key, value)`` and the screen applies it to the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Select

from trainwiz.estimator.types import (
    ATTENTIONS,
    LOOPS,
    METHODS,
    OPTIMIZERS,
    PRECISIONS,
    SHARDINGS,
    STRATEGIES,
)
from trainwiz.plan import PLAN_KEYS, Plan
from trainwiz.profiles.schema import SCHEDULERS

STRATEGY_LABELS = {"single": "single GPU", "ddp": "DDP", "fsdp": "FSDP"}
PRECISION_LABELS = {"bf16": "bf16 mixed", "fp16": "fp16 mixed", "fp32": "fp32 (no mixed)",
                    "bf16-pure": "bf16 pure (no fp32 copy)"}
ON_OFF = {False: "off", True: "on"}
LOOP_LABELS = {"custom": "custom loop", "trainer": "HF Trainer"}  # estimator.LOOP_TEXT says more
# every micro-batch up to 16 (3, 6, 12 are common where a power of two does not fit), then the
# usual steps up to 512
BATCHES = (*range(1, 17), 20, 24, 28, 32, 40, 48, 56, 64, 96, 128, 192, 256, 384, 512)
SEQ_LENS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
ACCUMS = (1, 2, 4, 8, 16, 32, 64)
MACHINES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
TOKENS = (0, 10**8, 10**9, 10**10, 10**11, 10**12)  # training length; 0: not given
TOKEN_LABELS = {0: "—", 10**8: "100M tokens", 10**9: "1B tokens", 10**10: "10B tokens",
                10**11: "100B tokens", 10**12: "1T tokens"}


def _fixed(values: Iterable) -> Callable[[Plan], tuple]:
    values = tuple(values)
    return lambda plan: values


def _always(plan: Plan) -> bool:
    return True


def _fsdp(plan: Plan) -> bool:
    return plan.config.strategy == "fsdp"


def _multi(plan: Plan) -> bool:
    return plan.config.strategy != "single"


@dataclass(frozen=True)
class Field:
    id: str  # the Select's id
    key: str  # the plan change it makes: a TrainConfig field or one of plan.PLAN_KEYS
    label: str
    choices: Callable[[Plan], Iterable]
    labels: dict = field(default_factory=dict)
    shown: Callable[[Plan], bool] = _always
    indent: bool = False  # an option of the field above (FSDP's)
    cpu_label: str | None = None  # the label on a CPU plan (ranks, not GPUs)

    def label_for(self, plan: Plan) -> str:
        return self.cpu_label if self.cpu_label and plan.device == "cpu" else self.label

    def value(self, plan: Plan):
        if self.key == "gpus_per_machine":
            return plan.gpus_per_machine
        if self.key == "tokens":
            return plan.tokens or 0
        if self.key in PLAN_KEYS:
            return getattr(plan, self.key)
        return getattr(plan.config, self.key)

    def options(self, plan: Plan) -> list:
        values = list(self.choices(plan))
        current = self.value(plan)
        if current not in values:
            values = sorted([*values, current], key=lambda v: (str(type(v)), v))
        if self.key == "tokens" and current not in self.labels:  # a profile's own length
            self.labels.setdefault(current, f"{current:,} tokens")
        return values


FIELDS: tuple[Field, ...] = (
    Field("strategy", "strategy", "strategy", _fixed(STRATEGIES), STRATEGY_LABELS),
    Field("sharding", "sharding", "sharding", _fixed(SHARDINGS), shown=_fsdp, indent=True),
    Field("offload", "offload_params", "offload", _fixed((False, True)), ON_OFF, shown=_fsdp,
          indent=True),
    Field("precision", "precision", "precision", _fixed(PRECISIONS), PRECISION_LABELS),
    Field("machines", "machines", "machines", _fixed(MACHINES), shown=_multi),
    Field("num-gpus", "gpus_per_machine", "GPUs/machine",
          lambda plan: range(1, min(plan.max_per_machine(), 64) + 1), shown=_multi,
          cpu_label="CPU ranks"),
    Field("batch", "batch_size", "micro-batch", _fixed(BATCHES)),
    Field("seq-len", "seq_len", "seq len", _fixed(SEQ_LENS)),
    Field("accum", "grad_accum", "grad accum", _fixed(ACCUMS)),
    Field("optimizer", "optimizer", "optimizer", _fixed(OPTIMIZERS)),
    Field("attention", "attention", "attention", _fixed(ATTENTIONS)),
    Field("ckpt", "activation_checkpointing", "act. ckpt", _fixed((False, True)), ON_OFF),
    Field("loop", "loop", "loop", _fixed(LOOPS), LOOP_LABELS),
    Field("method", "method", "method", _fixed(METHODS),
          {"full": "full fine-tune", "lora": "LoRA", "qlora": "QLoRA (4-bit)"}),
    Field("lora-rank", "lora_rank", "LoRA rank", _fixed((4, 8, 16, 32, 64, 128)),
          shown=lambda plan: plan.config.method != "full", indent=True),
    Field("train-for", "tokens", "train for", _fixed(TOKENS), TOKEN_LABELS),
    Field("scheduler", "scheduler", "scheduler", _fixed(SCHEDULERS),
          {"local": "here (torchrun)", "slurm": "Slurm (sbatch)"}, shown=_multi),
)
FIELD_BY_KEY = {f.key: f for f in FIELDS}


def _labelled(f: Field, values: list) -> list[tuple[Text, object]]:
    return [(Text(f.labels.get(v, str(v))), v) for v in values]


class PlanForm(Vertical):
    """One row per ``FIELDS`` entry; ``show(plan)`` sets them, edits post ``Changed``."""

    DEFAULT_CSS = """
    PlanForm { height: auto; }
    PlanForm .indent { padding-left: 2; }
    """

    class Changed(Message):
        def __init__(self, key: str, value) -> None:
            super().__init__()
            self.key = key
            self.value = value

    def __init__(self, plan: Plan, **kwargs) -> None:
        super().__init__(**kwargs)
        self._plan = plan
        self._options: dict[str, list] = {}
        self._shown: dict[str, object] = {}

    def compose(self) -> ComposeResult:
        for f in FIELDS:
            values = f.options(self._plan)
            self._options[f.id] = values
            self._shown[f.id] = f.value(self._plan)
            row = Horizontal(Label(f.label_for(self._plan), classes="field-label",
                                   id=f"label-{f.id}"),
                             Select(_labelled(f, values), value=f.value(self._plan),
                                    allow_blank=False, compact=True, id=f.id),
                             classes="field indent" if f.indent else "field", id=f"row-{f.id}")
            row.display = f.shown(self._plan)
            yield row

    def show(self, plan: Plan) -> None:
        """Show ``plan``: offered values, current values, which rows apply."""
        self._plan = plan
        for f in FIELDS:
            select = self.query_one(f"#{f.id}", Select)
            values = f.options(plan)
            if values != self._options.get(f.id):
                self._options[f.id] = values
                select.set_options(_labelled(f, values))
            value = f.value(plan)
            self._shown[f.id] = value
            if select.value != value:
                select.value = value
            self.query_one(f"#row-{f.id}").display = f.shown(plan)
            if f.cpu_label:
                self.query_one(f"#label-{f.id}", Label).update(f.label_for(plan))

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        event.stop()
        f = next((f for f in FIELDS if f.id == event.select.id), None)
        if f is None or event.value == Select.NULL or event.value != event.select.value:
            return  # stale: set again since
        if event.value == self._shown.get(f.id):
            return  # what show() set, not an edit
        self._shown[f.id] = event.value
        self.post_message(self.Changed(f.key, event.value))
