"""The config wizard: the model field and the plan form on the left, the live memory fit on the
right.

The screen holds one ``trainwiz.plan.Plan`` and only wires messages: the model field says which
model the text names, the form says which setting changed, the hardware select says which box
the plan is for; each becomes a new plan, priced by ``Plan.estimate`` (a few ms) and handed to
the ``MemoryPanel``. Suggestions apply with one key, 1..9; Ctrl+S saves the plan as a profile.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Select, Static

from trainwiz.errors import TrainwizError
from trainwiz.estimator.timing import suggestion_time_text, summary_lines
from trainwiz.hardware.presets import PRESETS
from trainwiz.estimator.types import verdict_of
from trainwiz.hardware.slurm import PartitionPlan, SlurmMissing, slurm_plans
from trainwiz.launchers.checks import cpu_ranks_need, host_memory
from trainwiz.plan import Box, Gpu, Plan, box_from_gpus, box_from_preset, stored_model
from trainwiz.profiles import Profile, ProfileExistsError, find_profile, save_profile
from trainwiz.profiles.schema import HOST_HELP, HOST_PATTERN
from trainwiz.profiles.store import check_name
from trainwiz.tui.screens.confirm import ConfirmScreen
from trainwiz.tui.screens.prompt import PromptScreen
from trainwiz.tui.widgets.memory_panel import MemoryPanel
from trainwiz.tui.widgets.model_field import ModelField, short_error
from trainwiz.tui.widgets.plan_form import FIELDS, STRATEGY_LABELS, PlanForm
from trainwiz.units import format_bytes

THIS_BOX = "this box"
RECORD = "profile"
PARTITION = "slurm:"  # + a partition name: plan for that partition's nodes


def partition_box(part: PartitionPlan) -> Box:
    """One node of a Slurm partition as a box: its GPUs by the type Slurm names (the memory
    of the matching preset, or unknown)."""
    preset = PRESETS.get(part.preset) if part.preset else None
    name = preset.name if preset else (part.gpu_type or "GPU")
    bf16 = float(preset.compute_capability) >= 8.0 if preset else None
    gpus = tuple(Gpu(i, name, part.gpu_memory, None, bf16) for i in range(part.gpus_per_node))
    return Box(gpus, f"Slurm partition {part.partition}", simulated=False, here=False)


def _comment_lines(text: str) -> int:
    """Lines of a YAML file with a comment (whole-line or after a value): what saving loses."""
    return sum(bool(re.search(r"(^|\s)#", line)) for line in text.splitlines())


class WizardScreen(Screen):
    """Model and training settings with a live memory estimate per GPU."""

    AUTO_FOCUS = ""  # on_mount focuses the first field once; later visits keep their own focus

    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("1", "apply(1)", "Apply", key_display="1-9"),
        *[Binding(str(i), f"apply({i})", show=False) for i in range(2, 10)],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plan = Plan.for_box(self._here())
        self.model = None  # ModelSpec of the model field's text
        self.model_error: str | None = None
        self._result = None  # PlanEstimate
        self.record_box: Box | None = None  # the hardware an opened profile was planned for
        self._hardware_chosen = False  # the user (or a profile) chose; readings don't reset it
        self.presets = dict(PRESETS)
        self._options_key: list[str] | None = None  # labels the hardware list shows
        self.partitions: dict[str, PartitionPlan] = {}  # Slurm partitions with GPUs, when any

    # -- compatibility with callers that think in TrainConfig / rows --------------------------
    @property
    def config(self):
        return self.plan.config

    @property
    def fits(self) -> tuple:
        """Rows of the memory panel (identical GPUs grouped)."""
        return self.result.rows() if self.result is not None else ()

    @property
    def base_profile(self):
        return self.plan.base

    @base_profile.setter
    def base_profile(self, profile) -> None:
        self.plan = dataclasses.replace(self.plan, base=profile)

    @property
    def catalog(self) -> list[str]:
        return self.query_one(ModelField).catalog

    def current_estimate(self):
        return self.result.estimate if self.result is not None else None

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="wizard-body"):
            with VerticalScroll(id="wizard-form", can_focus=False):
                yield Label("Model", classes="section")
                yield ModelField(id="model-field")
                yield Label("Hardware", classes="section")
                yield Horizontal(Label("plan for", classes="field-label"),
                                 Select(self._hardware_options(), value=THIS_BOX,
                                        allow_blank=False, compact=True, id="plan-for"),
                                 classes="field")
                yield Label("Training", classes="section")
                yield PlanForm(self.plan, id="plan-form")
                yield Static("", id="config-extras", classes="hint")
            with VerticalScroll(id="memory-scroll"):
                yield MemoryPanel(id="memory")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#model").focus()
        self.sub_title = "Wizard"
        self.watch(self.app, "gpus", self._gpus_changed)
        self._load_partitions()

    @work(thread=True, exit_on_error=False)
    def _load_partitions(self) -> None:
        """The cluster's partitions as hardware to plan for (sinfo), when this machine has Slurm."""
        try:
            parts = slurm_plans()
        except (SlurmMissing, TrainwizError):
            return  # no Slurm here: only this box and the presets are offered
        usable = {p.partition: p for p in parts if p.gpus_per_node > 0}
        if usable:
            self.app.call_from_thread(self._partitions_loaded, usable)

    def _partitions_loaded(self, parts: dict) -> None:
        self.partitions = parts
        self._refresh_hardware_options()

    def on_screen_resume(self) -> None:
        if self.focused is None and not self.query_one(ModelField).value:
            self.query_one("#model").focus()  # typing goes to the model, not to the app's keys

    @property
    def result(self):
        """The PlanEstimate shown (None: no model yet, or its error)."""
        return self._result

    @result.setter
    def result(self, value) -> None:
        self._result = value
        if self.is_attached:
            self.refresh_bindings()  # "1-9 Apply" shows only when there is a suggestion

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "apply":
            return bool(self._result is not None and self._result.suggestions)
        return True

    # -- hardware -----------------------------------------------------------------------------
    def _here(self) -> Box:
        app = self.app if self.is_attached else None
        gpus = getattr(app, "gpus", ()) if app else ()
        simulated = getattr(app, "source", "") == "simulated"
        return box_from_gpus(gpus, simulated=simulated)

    def _hardware_options(self) -> list:
        here = self._here()
        count = f"{here.size} GPU{'s' if here.size != 1 else ''}" if here.size else "no GPU"
        if self.plan.device == "cpu":  # the plan's ranks run on this machine's CPUs
            count = "CPU"
        options = [(Text(f"this box ({count})"), THIS_BOX)]
        if self.record_box is not None:
            # short enough for the closed list at 80 columns; the panel names the hardware
            options.append((Text(f"profile's {self.record_box.size} GPUs"), RECORD))
        options += [(Text(f"slurm {p.partition} ({p.nodes}× {p.gpus_per_node} {p.gpu_type or 'GPU'})"),
                     PARTITION + name) for name, p in self.partitions.items()]
        options += [(Text(f"{key} × 8"), key) for key in self.presets]
        return options

    def _refresh_hardware_options(self) -> None:
        """New labels only when they change: each GPU sample must not reset an open list."""
        options = self._hardware_options()
        key = [str(label) for label, _ in options]
        if key == self._options_key:
            return
        self._options_key = key
        select = self.query_one("#plan-for", Select)
        current = select.value
        values = [value for _, value in options]
        keep = current if current in values else THIS_BOX
        if keep == current:
            # the same choice under a new label ("this box (CPU)"): the closed Select
            # draws the new one only when its value changes, so it is moved and set back
            # without telling the screen, which would re-plan for that hardware
            other = next((v for v in values if v != keep), None)
            with select.prevent(Select.Changed):
                select.set_options(options)
                if other is not None:
                    select.value = other
                select.value = keep
            return
        select.set_options(options)
        select.value = keep

    def _gpus_changed(self, gpus: tuple) -> None:
        here = self._here()
        self._refresh_hardware_options()
        if self.plan.box.here:
            if not self._hardware_chosen and here.size != self.plan.box.size:
                # a sensible start for this box: all its GPUs, DDP when there are several
                self._hardware_chosen = bool(gpus)
                self.set_plan(Plan.for_box(here, self.plan.model))
                return
            self.set_plan(dataclasses.replace(self.plan, box=here))

    @on(Select.Changed, "#plan-for")
    def _plan_for_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value != event.select.value or event.value == Select.NULL:
            return
        if event.value == THIS_BOX:
            box = self._here()
        elif event.value == RECORD and self.record_box is not None:
            box = self.record_box
        elif event.value in self.presets:
            box = box_from_preset(self.presets[event.value])
        elif str(event.value).startswith(PARTITION) and \
                str(event.value)[len(PARTITION):] in self.partitions:
            part = self.partitions[str(event.value)[len(PARTITION):]]
            self._hardware_chosen = True
            # one node to start; the machines field asks Slurm for more
            self.set_plan(self.plan.on_box(partition_box(part)).with_changes(
                {"scheduler": "slurm", "partition": part.partition, "machines": 1,
                 "gpus_per_machine": part.gpus_per_node}))
            return
        else:
            return
        if box == self.plan.box:
            return
        self._hardware_chosen = True
        self.set_plan(self.plan.on_box(box))

    # -- messages from the form ---------------------------------------------------------------
    @on(PlanForm.Changed)
    def _form_changed(self, message: PlanForm.Changed) -> None:
        self.set_plan(self.plan.with_changes({message.key: message.value}))

    @on(ModelField.Resolved)
    def _model_resolved(self, message: ModelField.Resolved) -> None:
        self.model, self.model_error = message.model, message.error
        self.plan = self.plan.with_model(message.spec)
        if message.model is not None and message.model.max_position \
                and self.plan.config.seq_len > message.model.max_position \
                and self.plan.base is None:
            # a model with fewer positions than the sequence length: offer what it can take
            self.set_plan(self.plan.with_changes({"seq_len": message.model.max_position}))
            return
        self.recompute()

    # -- the plan -----------------------------------------------------------------------------
    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.query_one(PlanForm).show(plan)
        self.recompute()

    def recompute(self) -> None:
        panel = self.query_one("#memory", MemoryPanel)
        plan = self.plan
        self._show_extras()
        cfg = plan.config
        title = STRATEGY_LABELS.get(cfg.strategy, cfg.strategy)
        per = plan.gpus_per_machine
        unit = "CPU rank" if plan.device == "cpu" else "GPU"
        title += (f" · {plan.machines} machines × {per} {unit}s" if plan.machines > 1
                  else f" · {per} {unit}{'s' if per != 1 else ''}")
        panel.heading = ("Host memory (CPU ranks, gloo)" if plan.device == "cpu"
                         else "Memory per GPU (GiB)")
        if plan.device == "cpu" and cfg.strategy == "single":
            title = "one process"
        if plan.device != "cpu" and not plan.box.here:
            title += f" · planning for {plan.box.label}"
        if plan.box.simulated and plan.device != "cpu":
            title += " · simulated"
        panel.title = title
        panel.note = plan.differs(self._here()) or ""
        if self.model is None:
            self.result = None
            panel.message = (f"No estimate: {short_error(self.model_error)}"
                             if self.model_error else "Choose a model to see the estimate.")
            panel.estimate = None
            return
        try:
            result = plan.estimate(self.model)
        except TrainwizError as exc:  # an impossible combination: the estimator says why
            self.result = None
            panel.message = f"Cannot estimate: {exc}"
            panel.estimate = None
            return
        if plan.device == "cpu":
            self._show_cpu(result, panel)
            return
        time, timed = plan.time(result)
        # suggestions that fit, fastest first (as the CLI ranks them); the number keys apply
        # the suggestion shown under that number
        result = dataclasses.replace(result, suggestions=tuple(ts.suggestion for ts in timed))
        self.result = result
        panel.message = ""
        panel.time_lines = tuple(summary_lines(time, result.fits))
        panel.suggestion_times = tuple(suggestion_time_text(ts, time) for ts in timed)
        panel.estimate = result

    def _show_cpu(self, result, panel: MemoryPanel) -> None:
        """A CPU plan (``device: cpu``): its ranks' tensors live in this machine's memory, as
        preflight judges them; no GPU, no CUDA overhead, no GPU suggestions or GPU timings."""
        n = self.plan.gpus_per_machine
        per_rank = result.estimate.per_gpu.peak_allocated
        need, ram = cpu_ranks_need(per_rank, n), host_memory()
        text = Text()
        if ram:
            shown = verdict_of("fits" if need <= ram else "does not fit")
            text.append(f" {shown.banner} ", style=f"reverse {shown.style}")
            text.append(f" {format_bytes(need)} needed of {format_bytes(ram)} RAM on this "
                        "machine\n")
        else:
            text.append(f"{format_bytes(need)} of host memory needed (RAM here: unknown)\n")
        text.append(f"{n} CPU rank{'s' if n != 1 else ''} × {format_bytes(per_rank)} (the "
                    "estimate's peak per rank)\n")
        text.append("CPU ranks: no GPU and no CUDA overhead; no suggestions or time estimate "
                    "(those are for GPUs).", style="bright_black")
        self.result = dataclasses.replace(result, suggestions=())
        panel.time_lines = ()
        panel.suggestion_times = ()
        panel.estimate = None
        panel.message = text

    def _show_extras(self) -> None:
        """Settings a suggestion changed that have no field in the form (saved with the
        profile): say they are on."""
        shown = {f.key for f in FIELDS}
        cfg = self.plan.config
        parts = []
        if cfg.fused_optimizer and "fused_optimizer" not in shown:
            parts.append("fused optimizer: on")
        if self.plan.gpu_ids is not None:
            parts.append("GPUs " + ",".join(map(str, self.plan.gpu_ids)))
        line = self.query_one("#config-extras", Static)
        line.update(Text("also: " + "; ".join(parts) + " (saved)" if parts else ""))
        line.display = bool(parts)

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Save profile", "Save the wizard's settings as a profile",
                            self.action_save)
        for i, sug in enumerate(self.result.suggestions if self.result else (), 1):
            yield SystemCommand(f"Apply suggestion {i}", sug.note,
                                lambda i=i: self.action_apply(i))

    # -- changing the plan from outside ---------------------------------------------------------
    def apply_changes(self, changes: dict) -> None:
        """Apply a suggestion's ``change`` (or any plan change) and show it in the form."""
        self._hardware_chosen = True
        self.set_plan(self.plan.with_changes(changes))

    def set_model(self, spec: str) -> None:
        self.query_one(ModelField).value = spec

    def action_apply(self, number: int) -> None:
        suggestions = self.result.suggestions if self.result is not None else ()
        if number > len(suggestions):
            self.notify(f"No suggestion {number}.", severity="warning", timeout=2)
            return
        suggestion = suggestions[number - 1]
        self.apply_changes(dict(suggestion.change))
        self.notify(f"Applied: {suggestion.note}", timeout=3)

    # -- profiles -------------------------------------------------------------------------------
    def load_profile(self, profile) -> None:
        """Show the plan a saved profile holds, on the hardware it was planned for."""
        self._hardware_chosen = True
        plan = Plan.from_profile(profile, self._here())
        self.record_box = None if plan.box.here else plan.box
        self._refresh_hardware_options()
        self.query_one("#plan-for", Select).value = THIS_BOX if plan.box.here else RECORD
        self.set_plan(plan)
        self._refresh_hardware_options()  # a CPU profile: "this box (CPU)"
        self.set_model(plan.model)
        self.notify(f"Opened profile {profile.name}.", timeout=2)

    def build_profile(self, name: str):
        """The plan as profile ``name``; a model path the opened profile gave relative stays as
        the user wrote it while it names the same folder (to_profile makes a typed one
        absolute, so the profile opens from anywhere)."""
        profile = self.plan.to_profile(name)
        base = self.plan.base
        old = base.estimate.model if base is not None and base.estimate is not None else ""
        if old and profile.estimate is not None and not old.startswith(("/", "~")) \
                and old != profile.estimate.model and stored_model(old) == profile.estimate.model:
            profile = dataclasses.replace(
                profile, estimate=dataclasses.replace(profile.estimate, model=old))
        return profile

    def _needs_rendezvous(self) -> bool:
        """A plan over several machines started here (not by Slurm) that a launch would refuse:
        machine 0's address and port are not known yet."""
        base = self.plan.base
        return (self.plan.machines > 1 and self.plan.scheduler == "local"
                and not (base is not None and base.main_address and base.main_port))

    def action_save(self, name: str = "", error: str = "") -> None:
        default = name or (self.plan.base.name if self.plan.base else "")

        def chosen(answer: str | None) -> None:
            if answer and self._needs_rendezvous():
                self._ask_rendezvous(answer)
            elif answer:
                self._save(answer)

        question = "Save the settings as profile:"
        self.app.push_screen(PromptScreen(question, default, placeholder="profile name",
                                          error=error), chosen)

    def _ask_rendezvous(self, name: str, typed: str = "", error: str = "") -> None:
        """Ask for machine 0's address and port (``host:port``) before saving a profile for
        several machines: without them its launch is refused."""
        base = self.plan.base
        default = typed or (f"{base.main_address or ''}:{base.main_port or ''}".strip(":")
                            if base is not None else "")

        def answered(answer: str | None) -> None:
            if not answer:
                self.notify(f"Not saved: a {self.plan.machines}-machine profile needs machine "
                            "0's address and port.", severity="warning", timeout=4)
                return
            host, _, port = answer.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                self._ask_rendezvous(name, answer, "give it as host:port, the port from 1 to "
                                                   "65535 (e.g. node-0:29500)")
                return
            if not re.fullmatch(HOST_PATTERN, host):  # "my host [bold" was saved as it was
                self._ask_rendezvous(name, answer, f"{HOST_HELP}, then :port")
                return
            draft = self.plan.base or Profile(name="")
            self.plan = dataclasses.replace(self.plan, base=dataclasses.replace(
                draft, main_address=host.strip("[]"), main_port=int(port)))
            self._save(name)

        self.app.push_screen(PromptScreen(
            f"Machine 0's address and a port every machine can reach, for this "
            f"{self.plan.machines}-machine plan (host:port):", default,
            placeholder="node-0:29500", error=error), answered)

    def _save(self, name: str, force: bool = False) -> None:
        try:
            check_name(name)
            profile = self.build_profile(name)
            if not force and self._nothing_lost(name):
                force = True  # the opened profile, no comment in it: saved back unasked
            path = save_profile(profile, force=force)
        except ProfileExistsError as exc:
            self._ask_overwrite(name, Path(exc.path))
            return
        except TrainwizError as exc:
            self.action_save(name, error=str(exc))  # ask again, with what was typed
            return
        self.plan = dataclasses.replace(self.plan, base=profile)
        self.notify(f"Saved profile {name} to {path}.", timeout=4)

    def _nothing_lost(self, name: str) -> bool:
        """The file of profile ``name`` is the opened profile and has no comment: saving it
        back loses nothing of the user's (every key is kept; a relative model stays so)."""
        base = self.plan.base
        found = find_profile(name) if base is not None and base.name == name else None
        if found is None or found[1] != "user":
            return False
        try:
            return _comment_lines(found[0].read_text(encoding="utf-8")) == 0
        except OSError:
            return False

    def _ask_overwrite(self, name: str, path: Path) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._save(name, force=True)

        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        comments = _comment_lines(text)
        lost = (f" Its {comments} comment line{'s' if comments != 1 else ''} will be lost."
                if comments else "")
        self.app.push_screen(ConfirmScreen(f"Profile {name!r} exists ({path}). Replace it?"
                                           f"{lost}", yes="Replace", no="Keep it"), answered)
