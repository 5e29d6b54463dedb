"""Launch: a profile, the training script (with path completion), its arguments and the
interpreter; Check runs the launcher's preflight, Launch starts the run and opens the monitor.
Both run in thread workers (the preflight starts the interpreter to look for torch)."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from trainwiz.errors import NeedsConfirmation, TrainwizError
from trainwiz.launchers import launch as start
from trainwiz.launchers import preflight
from trainwiz.plan import Plan, box_from_gpus
from trainwiz.profiles import ProfileStore, load_profile
from trainwiz.tui.widgets.path_suggester import PathSuggester

WIZARD = "__wizard__"


class LaunchProfiles(Message):
    def __init__(self, entries: list) -> None:
        super().__init__()
        self.entries = entries


class PreflightDone(Message):
    def __init__(self, notes: list[str] | None = None, error: str | None = None,
                 handle=None, may_force: bool = False, checked=None) -> None:
        super().__init__()
        self.checked = checked
        self.notes = notes or []
        self.error = error
        self.handle = handle
        self.may_force = may_force


def _key(profile, script, args) -> tuple:
    """What a check was for: the same key means the same launch."""
    return (repr(profile), script, tuple(args))


def _field(label: str, widget) -> Horizontal:
    return Horizontal(Label(label, classes="field-label"), widget, classes="field")


class LaunchScreen(Screen):
    AUTO_FOCUS = ""  # on_mount focuses the first field once; later visits keep their own focus
    BINDINGS = [
        Binding("ctrl+t", "check", "Check"),
        Binding("ctrl+l", "launch", "Launch"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.profile = None
        self.profiles: dict[str, object] = {}
        self._force = False  # the user saw the memory warning and pressed Launch again
        self._checked = None  # (request key, Preflight) of the last Check that passed

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="launch-form", can_focus=False):
            yield _field("profile", Select([], prompt="choose a profile", id="launch-profile",
                                           compact=True))
            yield _field("or file", Input(placeholder="a profile YAML file (e.g. "
                                                      "examples/profiles/cpu-ddp.yaml)",
                                          id="launch-profile-file", suggester=PathSuggester(),
                                          compact=True))
            yield _field("script", Input(placeholder="train.py", id="launch-script",
                                         suggester=PathSuggester(), compact=True))
            yield _field("arguments", Input(placeholder="--lr 1e-4 --epochs 3",
                                            id="launch-args", compact=True))
            yield _field("python", Input(placeholder="python3 on PATH", id="launch-python",
                                         suggester=PathSuggester(), compact=True))
            with Horizontal(classes="buttons"):
                yield Button("Check (^t)", id="check", compact=True)
                yield Button("Launch (^l)", id="launch", variant="primary", compact=True)
            yield Label("Preflight", classes="section")
            yield Static("Choose a profile and a script, then Check or Launch.",
                         id="launch-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#launch-script").focus()
        self.sub_title = "Launch"

    def on_screen_resume(self) -> None:
        self._load_profiles()

    @work(thread=True, exclusive=True, group="launch-profiles", exit_on_error=False)
    def _load_profiles(self) -> None:
        try:
            entries = [e for e in ProfileStore().list() if not e.damaged and not e.shadowed]
        except Exception:
            entries = []
        self.post_message(LaunchProfiles(entries))

    @on(events.DescendantFocus, "#launch-profile")
    def _profile_focused(self) -> None:
        self._load_profiles()  # one imported or saved elsewhere since shows up here

    @on(LaunchProfiles)
    def _profiles_loaded(self, message: LaunchProfiles) -> None:
        self.profiles = {e.name: e.profile for e in message.entries}
        if self.profile is not None and self.profile.name not in self.profiles:
            self.profiles[self.profile.name] = self.profile
        select = self.query_one("#launch-profile", Select)
        options = [(Text(name), name) for name in sorted(self.profiles)]
        options.append((Text("the wizard's current settings (unsaved)"), WIZARD))
        select.set_options(options)
        if self.profile is not None:
            select.value = self.profile.name

    def use_profile(self, profile) -> None:
        """Preselect ``profile`` (Profiles → Launch); its script and python fill the form."""
        self.profile = profile
        self.profiles[profile.name] = profile
        self._fill_from(profile)
        self._forget_file()

    def _forget_file(self) -> None:
        """A profile chosen in the list replaces a file typed earlier: the run is what is shown."""
        self.query_one("#launch-profile-file", Input).value = ""

    def _fill_from(self, profile) -> None:
        if profile.script:
            self.query_one("#launch-script", Input).value = profile.script
        if profile.script_args:
            self.query_one("#launch-args", Input).value = shlex.join(profile.script_args)
        if profile.python:
            self.query_one("#launch-python", Input).value = profile.python

    @on(Select.Changed, "#launch-profile")
    def _profile_chosen(self, event: Select.Changed) -> None:
        self._force = False
        if event.value == WIZARD or event.value in self.profiles:
            self._forget_file()
        if event.value == WIZARD:
            self.profile = None
            self._show(notes=self._plan_notes(self.app.main_screen("wizard").plan))
        elif event.value in self.profiles:
            if self.profile is not self.profiles[event.value]:
                self.profile = self.profiles[event.value]
                self._fill_from(self.profile)
            # the last profile's error or check is not about this one
            self._show(notes=self._plan_notes(Plan.from_profile(self.profile, self._here())))

    def _here(self):
        return box_from_gpus(self.app.gpus, simulated=self.app.source == "simulated")

    def _plan_notes(self, plan) -> list[str]:
        """What the chosen plan is, and whether it was made for other hardware."""
        per = plan.gpus_per_machine
        what = (f"plan: {plan.config.strategy}, {plan.machines} machines × {per} GPUs"
                if plan.machines > 1 else f"plan: {plan.config.strategy}, {per} "
                f"{'CPU rank' if plan.device == 'cpu' else 'GPU'}{'s' if per != 1 else ''}")
        differs = plan.differs(self._here()) if plan.device == "cuda" else None
        return [what] + ([f"warning: {differs}"] if differs else [])

    @on(Input.Changed)
    def _form_changed(self) -> None:
        self._force = False
        self._checked = None

    def _request(self):
        """(profile, script, args) from the form, or None after saying what is missing."""
        select = self.query_one("#launch-profile", Select)
        profile_file = self.query_one("#launch-profile-file", Input).value.strip()
        if profile_file:
            try:
                profile = load_profile(profile_file, cwd=Path.cwd())
            except TrainwizError as exc:
                self._show(error=str(exc))
                return None
        elif select.value == WIZARD:
            profile = self.app.main_screen("wizard").build_profile("wizard")
        elif self.profile is not None:
            profile = self.profile
        else:
            self._show(error="Choose a profile first (or the wizard's current settings).")
            return None
        python = self.query_one("#launch-python", Input).value.strip()
        if python:
            profile = dataclasses.replace(profile, python=python)
        script = self.query_one("#launch-script", Input).value.strip() or None
        try:
            args = shlex.split(self.query_one("#launch-args", Input).value)
        except ValueError as exc:
            self._show(error=f"arguments: {exc}")
            return None
        if script is None and not profile.script:
            self._show(error="Give the training script to run.")
            return None
        if script is None:  # the profile's own script and arguments
            args = []
        return profile, script, args

    def action_check(self) -> None:
        request = self._request()
        if request is not None:
            self._show(busy="checking…")
            self._run(*request, launch=False, force=False)

    def action_launch(self) -> None:
        request = self._request()
        if request is not None:
            self._show(busy="launching…")
            checked = self._checked
            pre = checked[1] if checked is not None and checked[0] == _key(*request) else None
            self._run(*request, launch=True, force=self._force, pre=pre)

    @on(Button.Pressed, "#check")
    def _check_pressed(self) -> None:
        self.action_check()

    @on(Button.Pressed, "#launch")
    def _launch_pressed(self) -> None:
        self.action_launch()

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False)
    def _run(self, profile, script, args, *, launch: bool, force: bool, pre=None) -> None:
        simulate = getattr(self.app, "simulate", None)
        try:
            if pre is None:
                pre = preflight(profile, script, args, simulate=simulate, yes=force)
            if not launch:
                # Launch reuses this check while the form is unchanged: the port it names is
                # the port torchrun gets
                warned = sum(note.startswith("warning") for note in pre.notes)
                head = (f"warning: {warned} warning{'s' if warned > 1 else ''} below; the other "
                        "checks passed" if warned else "all checks passed")
                self.post_message(PreflightDone(notes=[head, *pre.notes,
                                                       f"{pre.nproc} processes"
                                                       + (f", port {pre.port}" if pre.port
                                                          is not None else "")],
                                                checked=(_key(profile, script, args), pre)))
                return
            handle = start(profile, script, args, simulate=simulate, yes=force, pre=pre,
                           cwd=str(Path.cwd()))
        except TrainwizError as exc:
            self.post_message(PreflightDone(error=str(exc), may_force=isinstance(exc, NeedsConfirmation)))
            return
        except Exception as exc:  # an unexpected failure is shown, the app carries on
            self.post_message(PreflightDone(error=f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(PreflightDone(notes=list(handle.notes), handle=handle))

    @on(PreflightDone)
    def _done(self, message: PreflightDone) -> None:
        self._checked = message.checked
        if message.error:
            self._force = message.may_force
            extra = "\nPress Launch again to launch anyway." if message.may_force else ""
            self._show(error=message.error + extra)
            return
        self._show(notes=message.notes)
        if message.handle is not None:
            self.notify(f"Launched run {message.handle.id}.", timeout=3)
            self.app.open_monitor(message.handle.run_dir)

    def _show(self, notes: list[str] | None = None, error: str | None = None,
              busy: str | None = None) -> None:
        text = Text()
        if busy:
            text.append(busy, style="italic")
        if error:
            text.append("✗ ", style="bold red")
            text.append(error, style="red")
        for note in notes or []:
            text.append("✓ " if not note.startswith("warning") else "! ",
                        style="green" if not note.startswith("warning") else "yellow")
            text.append(note + "\n")
        self.query_one("#launch-status", Static).update(text)
