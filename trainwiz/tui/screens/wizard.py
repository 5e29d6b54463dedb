"""The config wizard: a form on the left, the live memory fit on the right.

The form edits a ``TrainConfig`` (the estimator's own value); every change re-runs
``trainwiz.estimator.estimate`` for each selected GPU (well under 5 ms each) and hands the
results to the ``MemoryPanel``. Model names are resolved in a thread worker (a path means a
file read). Suggestions apply with one key, 1..9. Ctrl+S saves the form as a profile.
"""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Select, Static
from textual.worker import get_current_worker

from trainwiz.estimator.types import OPTIMIZERS, SHARDINGS, TrainConfig
from trainwiz.tui import fmt
from trainwiz.tui.widgets.memory_panel import GpuFit, MemoryPanel, overall
from trainwiz.tui.widgets.model_suggester import ModelSuggester

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
SEQ_LENS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
ACCUMS = (1, 2, 4, 8, 16, 32, 64)
STRATEGY_LABELS = {"single": "single GPU", "ddp": "DDP", "fsdp": "FSDP"}
PRECISION_LABELS = {"bf16": "bf16 mixed", "fp16": "fp16 mixed", "fp32": "fp32 (no mixed)"}
PROFILE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
PLANNING_GPUS = 8  # GPU counts offered when no GPU is known (or planning for a preset)
THIS_BOX = "this box"

# Select id -> TrainConfig field
# TrainConfig fields the profile keeps although the form has no field for them
SAVED_WITHOUT_FIELD = {"fused_optimizer"}

SELECT_FIELDS = {
    "strategy": "strategy", "sharding": "sharding", "precision": "precision",
    "num-gpus": "num_gpus", "batch": "batch_size", "seq-len": "seq_len",
    "accum": "grad_accum", "optimizer": "optimizer", "attention": "attention",
    "ckpt": "activation_checkpointing", "offload": "offload_params",
}
ON_OFF = {False: "off", True: "on"}


def catalog_names() -> list[str]:
    """Model names for completion (reads the estimator's catalog: call it from a worker)."""
    try:
        from trainwiz.estimator.models import catalog_names as names
        return list(names())
    except ImportError:
        pass
    try:
        from trainwiz.estimator.catalog import CATALOG
    except ImportError:
        return []
    return sorted(CATALOG)


def short_error(message: str, limit: int = 110) -> str:
    """The first sentences of an error, for the one field under the model input."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1].rstrip() + "…"


def resolve_spec(spec: str):
    """A ModelSpec from what the model field holds: a catalog name, a path, or ``params:N``."""
    from trainwiz.estimator import model_from_params, resolve_model
    try:
        from trainwiz.profiles.estimate_io import model_argument
    except ImportError:
        return resolve_model(spec)
    name, params = model_argument(spec)
    return model_from_params(params) if params is not None else resolve_model(name)


class CatalogLoaded(Message):
    def __init__(self, names: list[str], presets: dict | None = None) -> None:
        super().__init__()
        self.names = names
        self.presets = presets or {}


class ModelResolved(Message):
    def __init__(self, spec: str, model, error: str | None) -> None:
        super().__init__()
        self.spec = spec
        self.model = model
        self.error = error


def _options(values, labels=None, current=None):
    values = list(values)
    if current is not None and current not in values:
        values = sorted([*values, current])
    return [((labels or {}).get(v, str(v)), v) for v in values]


def _row(label: str, widget, row_id: str | None = None) -> Horizontal:
    return Horizontal(Label(label, classes="field-label"), widget, classes="field", id=row_id)


class WizardScreen(Screen):
    """Model and training settings with a live memory estimate per GPU."""

    AUTO_FOCUS = None  # the first field once; later visits keep their own focus

    BINDINGS = [
        Binding("ctrl+s", "save", "Save profile"),
        Binding("1", "apply(1)", "Apply suggestion", key_display="1-9"),
        *[Binding(str(i), f"apply({i})", show=False) for i in range(2, 10)],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.config = TrainConfig(seq_len=2048)
        self.model = None  # ModelSpec
        self.model_error: str | None = None
        self.base_profile = None  # the profile opened, so saving keeps its launch settings
        self.fits: list[GpuFit] = []
        self.catalog: list[str] = []
        self.presets: dict = {}
        self._box_size = 0
        self.plan_preset = None  # a hardware preset to plan for instead of this box's GPUs
        self._config_from_hardware = False
        self._choices: dict[str, list] = {
            "strategy": list(STRATEGY_LABELS), "sharding": list(SHARDINGS),
            "precision": list(PRECISION_LABELS), "num-gpus": list(range(1, PLANNING_GPUS + 1)),
            "batch": list(BATCHES), "seq-len": list(SEQ_LENS), "accum": list(ACCUMS),
            "optimizer": list(OPTIMIZERS), "attention": ["sdpa", "eager"],
            "ckpt": [False, True], "offload": [False, True]}

    def compose(self) -> ComposeResult:
        cfg = self.config
        yield Header()
        with Horizontal(id="wizard-body"):
            with VerticalScroll(id="wizard-form", can_focus=False):
                yield Label("Model", classes="section")
                yield Input(placeholder="catalog name or path to config.json", id="model",
                            compact=True)
                yield Static("", id="model-status")
                yield Label("Training", classes="section")
                yield _row("plan for", Select([(THIS_BOX, THIS_BOX)], value=THIS_BOX,
                                              allow_blank=False, compact=True, id="plan-for"))
                yield _row("strategy", Select(_options(STRATEGY_LABELS, STRATEGY_LABELS),
                                              value=cfg.strategy, allow_blank=False,
                                              compact=True, id="strategy"))
                with Vertical(id="fsdp-options"):
                    yield _row("sharding", Select(_options(SHARDINGS), value=cfg.sharding,
                                                  allow_blank=False, compact=True,
                                                  id="sharding"))
                    yield _row("offload", Select(_options((False, True), ON_OFF),
                                                 value=cfg.offload_params, allow_blank=False,
                                                 compact=True, id="offload"))
                yield _row("precision", Select(_options(PRECISION_LABELS, PRECISION_LABELS),
                                               value=cfg.precision, allow_blank=False,
                                               compact=True, id="precision"))
                yield _row("GPUs", Select(_options(range(1, PLANNING_GPUS + 1)),
                                          value=cfg.num_gpus, allow_blank=False,
                                          compact=True, id="num-gpus"))
                yield _row("micro-batch", Select(_options(BATCHES), value=cfg.batch_size,
                                                 allow_blank=False, compact=True, id="batch"))
                yield _row("seq len", Select(_options(SEQ_LENS), value=cfg.seq_len,
                                             allow_blank=False, compact=True, id="seq-len"))
                yield _row("grad accum", Select(_options(ACCUMS), value=cfg.grad_accum,
                                                allow_blank=False, compact=True, id="accum"))
                yield _row("optimizer", Select(_options(OPTIMIZERS), value=cfg.optimizer,
                                               allow_blank=False, compact=True,
                                               id="optimizer"))
                yield _row("attention", Select(_options(("sdpa", "eager")),
                                               value=cfg.attention, allow_blank=False,
                                               compact=True, id="attention"))
                yield _row("act. ckpt", Select(_options((False, True), ON_OFF),
                                               value=cfg.activation_checkpointing,
                                               allow_blank=False, compact=True, id="ckpt"))
                yield Static("", id="config-extras", classes="hint")
            with VerticalScroll(id="memory-scroll"):
                yield MemoryPanel(id="memory")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#model").focus()
        self.sub_title = "Wizard"
        self.query_one("#fsdp-options").display = self.config.strategy == "fsdp"
        self.watch(self.app, "gpus", self._gpus_changed)
        self._load_catalog()

    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False)
    def _load_catalog(self) -> None:
        try:
            names = catalog_names()
        except Exception:  # completion is a convenience; the field still takes any name
            names = []
        try:
            from trainwiz.hardware import PRESETS
            presets = dict(PRESETS)
        except Exception:
            presets = {}
        self.post_message(CatalogLoaded(names, presets))

    @on(CatalogLoaded)
    def _catalog_loaded(self, message: CatalogLoaded) -> None:
        self.catalog = message.names
        self.query_one("#model", Input).suggester = ModelSuggester(message.names)
        self.presets = message.presets
        self._plan_options()

    def _plan_options(self) -> None:
        # the value names the box size, so a new label shows (an equal value would not redraw)
        this_box = f"{THIS_BOX}:{len(self.app.gpus)}"
        select = self.query_one("#plan-for", Select)
        current = select.value
        select.set_options([(Text(self._this_box_label()), this_box)]
                           + [(Text(key), key) for key in self.presets])
        select.value = current if current in self.presets else this_box

    def _this_box_label(self) -> str:
        gpus = self.app.gpus
        if not gpus:
            return "this box (no GPU: unknown memory)"
        return f"this box ({len(gpus)}× {gpus[0].name.removeprefix('NVIDIA ')})"

    @on(Select.Changed, "#plan-for")
    def _plan_for_changed(self, event: Select.Changed) -> None:
        if event.value != event.select.value or event.value == Select.NULL:
            return
        self.plan_preset = self.presets.get(event.value)  # None: this box
        self._gpus_changed(self.app.gpus)

    # -- hardware ------------------------------------------------------------------------
    def _gpus_changed(self, gpus: tuple) -> None:
        if self.presets and len(gpus) != self._box_size:
            self._box_size = len(gpus)
            self._plan_options()  # "this box (2× H100 …)"
        count = PLANNING_GPUS if self.plan_preset is not None else (len(gpus) or PLANNING_GPUS)
        current = min(self.config.num_gpus, count)
        self._set_choices("num-gpus", range(1, count + 1), current)
        if current != self.config.num_gpus:
            self.config = self.config.with_changes(num_gpus=current)
        if gpus and not self._config_from_hardware and self.base_profile is None \
                and self.plan_preset is None:
            # a sensible start for this box: all its GPUs, DDP when there are several, bf16
            # where the GPUs support it
            self._config_from_hardware = True
            bf16 = all(g.supports_bf16 for g in gpus)
            self.apply_changes({"num_gpus": len(gpus),
                                "strategy": "ddp" if len(gpus) > 1 else "single",
                                "precision": "bf16" if bf16 else "fp32"})
            return
        self.recompute()

    def targets(self) -> list[tuple[str, int | None, int | None]]:
        """(label, capacity, free) of each GPU the estimate is for: this box's first GPUs,
        a preset planned for (idle), or GPUs of unknown memory when there are none."""
        n = self.config.num_gpus
        if self.plan_preset is not None:
            cap = self.plan_preset.memory_total
            return [(f"GPU{i}", cap, None) for i in range(n)]
        gpus = list(self.app.gpus)[:n]
        ids = self.base_profile.gpu_ids if self.base_profile is not None else None
        if ids and len(ids) == n:  # the GPUs the opened profile names
            by_index = {g.index: g for g in self.app.gpus}
            if all(i in by_index for i in ids):
                gpus = [by_index[i] for i in ids]
        if gpus:
            return [(f"GPU{g.index}", g.memory_total, g.memory_free) for g in gpus]
        return [(f"GPU{i}", None, None) for i in range(n)]

    # -- form events ---------------------------------------------------------------------
    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        field = SELECT_FIELDS.get(event.select.id or "")
        if field is None or event.value == Select.NULL:
            return
        if event.value != event.select.value:
            return  # stale: the select was set again since (a suggestion, a profile)
        if getattr(self.config, field) != event.value:
            before = self.config
            self.config = self.config.with_changes(**{field: event.value})
            if field == "strategy" and (event.value == "single") != (before.strategy == "single"):
                # one GPU for single; all of them when moving to DDP or FSDP
                count = 1 if event.value == "single" else max(len(self.app.gpus), 2)
                self.apply_changes({"num_gpus": count})
        if field == "strategy":
            self.query_one("#fsdp-options").display = event.value == "fsdp"
        self.recompute()

    @on(Input.Changed, "#model")
    def _model_changed(self, event: Input.Changed) -> None:
        spec = event.value.strip()
        if not spec:
            self.model, self.model_error = None, None
            self.query_one("#model-status", Static).update("")
            self.recompute()
            return
        self._resolve(spec)

    @on(Input.Submitted, "#model")
    def _model_submitted(self) -> None:
        self.focus_next()

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def _resolve(self, spec: str) -> None:
        from trainwiz.errors import TrainwizError
        try:
            model, error = resolve_spec(spec), None
        except TrainwizError as exc:
            model, error = None, str(exc)
        except (ImportError, AttributeError) as exc:
            model, error = None, f"the model catalog is not available yet ({exc})"
        except Exception as exc:  # a file that cannot be read: shown in the form
            model, error = None, f"{type(exc).__name__}: {exc}"
        if not get_current_worker().is_cancelled:
            self.post_message(ModelResolved(spec, model, error))

    @on(ModelResolved)
    def _model_resolved(self, message: ModelResolved) -> None:
        if message.spec != self.query_one("#model", Input).value.strip():
            return  # typed on since; a newer resolution is coming
        self.model, self.model_error = message.model, message.error
        status = self.query_one("#model-status", Static)
        if message.model is not None:
            status.update(Text(f"{message.model.name}: {fmt.params(message.model.params)} parameters"))
            status.set_class(False, "error")
        else:
            status.update(Text(short_error(message.error or "")))
            status.set_class(True, "error")
        self.recompute()

    # -- the estimate --------------------------------------------------------------------
    def recompute(self) -> None:
        panel = self.query_one("#memory", MemoryPanel)
        cfg = self.config
        self._show_extras()
        panel.title = f"{STRATEGY_LABELS.get(cfg.strategy, cfg.strategy)} · {cfg.num_gpus} GPU" \
                      f"{'s' if cfg.num_gpus != 1 else ''}"
        if self.model is None:
            self.fits = []
            panel.message = ("Model not found — see the message under the model field."
                             if self.model_error else "Choose a model to see the estimate.")
            panel.fits = []
            return
        try:
            from trainwiz.estimator import estimate
        except ImportError as exc:
            panel.message = f"The estimator is not available yet ({exc})."
            panel.fits = []
            return
        panel.gpu_count = 0 if self.plan_preset is not None else len(self.app.gpus)
        if self.plan_preset is not None:
            panel.title += f" · planning for {self.plan_preset.key}"
        fits: list[GpuFit] = []
        cache: dict = {}
        try:
            for label, cap, free in self.targets():
                key = (cap, free)
                if key not in cache:
                    cache[key] = estimate(self.model, cfg, gpu_memory=cap, gpu_free=free,
                                          available_gpus=panel.gpu_count or None)
                fits.append(GpuFit(label, cache[key], cap, free))
        except Exception as exc:  # an impossible combination: the estimator says why
            panel.message = f"Cannot estimate: {exc}"
            panel.fits = []
            self.fits = []
            return
        self.fits = fits
        panel.message = ""
        panel.fits = fits

    def _show_extras(self) -> None:
        """Settings a suggestion changed that have no field in the form: say they are on, and
        whether the profile keeps them."""
        defaults = TrainConfig()
        shown = set(SELECT_FIELDS.values())
        changed = [f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in shown and f.name != "num_gpus"
                   and getattr(self.config, f.name) != getattr(defaults, f.name)]
        kept = [n for n in changed if n in SAVED_WITHOUT_FIELD]
        lost = [n for n in changed if n not in SAVED_WITHOUT_FIELD]
        parts = []
        if kept:
            parts.append("also: " + ", ".join(f"{n.replace('_', ' ')}: {getattr(self.config, n)}"
                                              for n in kept) + " (saved)")
        if lost:
            parts.append("also: " + ", ".join(f"{n.replace('_', ' ')}: {getattr(self.config, n)}"
                                              for n in lost) + " (not saved in the profile)")
        extras_line = self.query_one("#config-extras", Static)
        extras_line.update(Text("; ".join(parts)))
        extras_line.display = bool(parts)

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Save profile", "Save the wizard's settings as a profile",
                            self.action_save)
        est = self.current_estimate()
        for i, sug in enumerate(est.suggestions[:9] if est else (), 1):
            yield SystemCommand(f"Apply suggestion {i}", sug.note,
                                lambda i=i: self.action_apply(i))

    def current_estimate(self):
        return overall(self.fits)

    # -- changing the form from outside -------------------------------------------------
    def apply_changes(self, changes: dict) -> None:
        """Set TrainConfig fields (a suggestion's ``change``) and show them in the form."""
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        valid = {k: v for k, v in changes.items() if k in known}
        if not valid:
            return
        self.config = self.config.with_changes(**valid)
        self._sync_form()
        self.recompute()

    def _set_choices(self, select_id: str, values, current) -> None:
        """Offer ``values`` (plus ``current`` when it is not one of them) and select it."""
        values = list(values)
        if current not in values:
            values = sorted([*values, current])
        select = self.query_one(f"#{select_id}", Select)
        if values != self._choices.get(select_id):
            self._choices[select_id] = values
            labels = {"strategy": STRATEGY_LABELS, "precision": PRECISION_LABELS,
                      "ckpt": ON_OFF, "offload": ON_OFF}.get(select_id)
            select.set_options(_options(values, labels))
        if select.value != current:
            select.value = current

    def _sync_form(self) -> None:
        cfg = self.config
        for select_id, field in SELECT_FIELDS.items():
            select = self.query_one(f"#{select_id}", Select)
            value = getattr(cfg, field)
            if select.value == value:
                continue
            if value not in self._choices[select_id]:
                self._set_choices(select_id, self._choices[select_id], value)
            select.value = value
        self.query_one("#fsdp-options").display = cfg.strategy == "fsdp"

    def set_model(self, spec: str) -> None:
        self.query_one("#model", Input).value = spec

    def action_apply(self, number: int) -> None:
        est = self.current_estimate()
        if est is None or number > len(est.suggestions[:9]):
            self.notify(f"No suggestion {number}.", severity="warning", timeout=2)
            return
        suggestion = est.suggestions[number - 1]
        box = 0 if self.plan_preset is not None else len(self.app.gpus)
        wanted = suggestion.change.get("num_gpus", 0)
        if box and wanted > box:  # the form cannot pick GPUs this machine does not have
            self.notify(f"Suggestion {number} needs {wanted} GPUs; this box has {box}. "
                        "Plan for a bigger box with 'plan for', or pick another suggestion.",
                        severity="warning", timeout=5)
            return
        self.apply_changes(dict(suggestion.change))
        self.notify(f"Applied: {suggestion.note}", timeout=3)

    # -- profiles ------------------------------------------------------------------------
    def load_profile(self, profile) -> None:
        """Fill the form from a saved profile (the form keeps what the profile holds)."""
        self.base_profile = profile
        self._config_from_hardware = True
        model_spec, config = None, None
        try:
            from trainwiz.profiles import estimate_request
            request = estimate_request(profile, max(len(self.app.gpus), 1))
            if request is not None:
                model_spec, config = request
        except ImportError:
            pass
        if config is None:
            model_spec, config = _config_from_profile(profile, self.config,
                                                      len(self.app.gpus) or 1)
        self.config = config
        self._sync_form()
        self.set_model(model_spec or "")
        self.recompute()
        self.notify(f"Opened profile {profile.name}.", timeout=2)

    def build_profile(self, name: str):
        from trainwiz.profiles.schema import EstimateInputs, FsdpOptions, Profile

        cfg = self.config
        base = self.base_profile or Profile(name=name)
        fsdp = base.fsdp or FsdpOptions()
        if cfg.strategy == "fsdp":
            fsdp = dataclasses.replace(fsdp, sharding_strategy=cfg.sharding,
                                       offload_params=cfg.offload_params,
                                       activation_checkpointing=cfg.activation_checkpointing)
        # what the form cannot show is kept as the profile had it: which GPUs, fp8
        total = len(self.app.gpus) if self.plan_preset is None else 0
        if base.gpu_ids is not None and len(base.gpu_ids) == cfg.num_gpus:
            gpu_ids = base.gpu_ids
        elif base.gpu_ids is None and (base.num_processes or total) == cfg.num_gpus:
            gpu_ids = None
        else:
            gpu_ids = None if total and cfg.num_gpus == total else list(range(cfg.num_gpus))
        num_processes = cfg.num_gpus if base.num_processes is not None else None
        precision = PROFILE_PRECISION[cfg.precision]
        if base.mixed_precision == "fp8" and cfg.precision == "bf16":
            precision = "fp8"  # estimated as bf16; the profile keeps fp8
        model = self.query_one("#model", Input).value.strip()
        estimate = EstimateInputs(model=model, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                                  optimizer=cfg.optimizer, fused_optimizer=cfg.fused_optimizer,
                                  grad_accum=cfg.grad_accum,
                                  activation_checkpointing=cfg.activation_checkpointing,
                                  attention=cfg.attention) if model else base.estimate
        return dataclasses.replace(base, name=name, strategy=cfg.strategy, fsdp=fsdp,
                                   mixed_precision=precision, gpu_ids=gpu_ids,
                                   num_processes=num_processes, estimate=estimate)

    def action_save(self) -> None:
        from trainwiz.tui.screens.prompt import PromptScreen

        default = self.base_profile.name if self.base_profile else ""

        def chosen(name: str | None) -> None:
            if name:
                self._save(name, force=bool(self.base_profile and name == default))

        self.app.push_screen(PromptScreen("Save the settings as profile:", default,
                                          placeholder="profile name"), chosen)

    def _save(self, name: str, force: bool = False) -> None:
        try:
            from trainwiz.profiles import save_profile
        except ImportError:
            self.notify("Saving profiles is not available yet.", severity="error")
            return
        from trainwiz.errors import TrainwizError
        try:
            profile = self.build_profile(name)
            path = save_profile(profile, force=force)
        except FileExistsError:
            self._ask_overwrite(name)
            return
        except TrainwizError as exc:
            if "exists" in str(exc) and not force:
                self._ask_overwrite(name)
                return
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.base_profile = profile
        self.notify(f"Saved profile {name}" + (f" to {path}" if path else "") + ".", timeout=4)

    def _ask_overwrite(self, name: str) -> None:
        from trainwiz.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._save(name, force=True)

        self.app.push_screen(ConfirmScreen(f"A profile named {name!r} exists. Replace it?",
                                           yes="Replace", no="Keep it"), answered)


def _config_from_profile(profile, config: TrainConfig, gpu_count: int):
    """The form's values from a profile, for when ``estimate_request`` is not available."""
    precision = {"no": "fp32", "fp16": "fp16", "bf16": "bf16", "fp8": "bf16"}
    num = (len(profile.gpu_ids) if profile.gpu_ids else profile.num_processes) or gpu_count
    changes = dict(strategy=profile.strategy, sharding=profile.fsdp.sharding_strategy,
                   offload_params=profile.fsdp.offload_params,
                   precision=precision.get(profile.mixed_precision, "fp32"), num_gpus=num,
                   activation_checkpointing=profile.fsdp.activation_checkpointing)
    est = profile.estimate
    if est is not None:
        changes.update(batch_size=est.batch_size, seq_len=est.seq_len, optimizer=est.optimizer,
                       grad_accum=est.grad_accum, attention=est.attention,
                       activation_checkpointing=est.activation_checkpointing
                       or profile.fsdp.activation_checkpointing)
    return (est.model if est else None), config.with_changes(**changes)
