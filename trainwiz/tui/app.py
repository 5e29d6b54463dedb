"""The full-screen app: ``trainwiz`` with no command.

One mode per main screen (GPUs, Wizard, Profiles, Launch, Runs); the monitor is pushed on top
of Runs or Launch. The app owns the hardware: a thread worker probes once, then samples the
GPUs, each poll scheduled only after the previous one finished; screens watch ``gpus``.
Nothing here computes memory or talks to NVML on the event loop.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Input, Select

from trainwiz.errors import TrainwizError
from trainwiz.hardware import GpuSampler, detect, parse_simulate
from trainwiz.tui.messages import GpusSampled, HardwareDetected
from trainwiz.tui.screens.gpus import GpusScreen
from trainwiz.tui.screens.launch import LaunchScreen
from trainwiz.tui.screens.monitor import MonitorScreen
from trainwiz.tui.screens.profiles import ProfilesScreen
from trainwiz.tui.screens.runs import RunsScreen
from trainwiz.tui.screens.wizard import WizardScreen

MAIN_SCREENS = {
    "gpus": "GPUs",
    "wizard": "Wizard",
    "profiles": "Profiles",
    "launch": "Launch",
    "runs": "Runs",
}


class TrainwizApp(App):
    """Plan, fit, launch and watch training runs."""

    CSS_PATH = ["styles/app.tcss"]
    TITLE = "trainwiz"

    # One footer entry for the five screen keys, so the footer fits 80 columns. Letters act
    # only where no form field has focus (typing a model name never switches screens);
    # Escape leaves a field; Ctrl+Q always quits.
    BINDINGS = [
        Binding("g", "show('gpus')", "Screens", key_display="g/w/p/l/r"),
        Binding("w", "show('wizard')", "Wizard", show=False),
        Binding("p", "show('profiles')", "Profiles", show=False),
        Binding("l", "show('launch')", "Launch", show=False),
        Binding("r", "show('runs')", "Runs", show=False),
        Binding("q", "quit", "Quit"),
        Binding("escape", "leave_field", "Leave field"),
    ]

    # Latest readings of every GPU (a tuple of GpuInfo); screens watch it.
    gpus: reactive[tuple] = reactive(tuple, always_update=True)
    # "nvml" | "simulated" | "none" | "unavailable" | "" (still probing)
    source: reactive[str] = reactive("")
    # one line about the hardware for the user (no GPU, NVML failed, GPU not answering)
    hardware_message: reactive[str | None] = reactive(None)
    host = reactive(None)
    # True while the GPUs do not answer: screens keep the last readings and say so
    gpus_stale: reactive[bool] = reactive(False)

    def __init__(self, simulate: str | None = None, *, poll_interval: float | None = 2.0,
                 start_mode: str = "gpus") -> None:
        super().__init__()
        self.simulate = simulate
        self.poll_interval = poll_interval
        self.start_mode = start_mode
        self.detection = None
        self._sampler = None
        self._screens: dict[str, Screen] = {}
        for mode in MAIN_SCREENS:
            self.add_mode(mode, lambda mode=mode: self._make_screen(mode))

    # -- screens -------------------------------------------------------------------------
    def _make_screen(self, mode: str) -> Screen:
        if mode == "gpus":
            screen = GpusScreen()
        elif mode == "wizard":
            screen = WizardScreen()
        elif mode == "profiles":
            screen = ProfilesScreen()
        elif mode == "launch":
            screen = LaunchScreen()
        else:
            screen = RunsScreen()
        self._screens[mode] = screen
        return screen

    def main_screen(self, mode: str) -> Screen:
        """The base screen of a mode (created on first use)."""
        return self._screens.get(mode) or self._make_screen(mode)

    def on_mount(self) -> None:
        self.switch_mode(self.start_mode)
        # probe after the first frame: the worker's imports would compete with it for the GIL
        self.call_after_refresh(self._detect)

    def notify(self, message: str, *, markup: bool = False, **kwargs) -> None:
        """Every notification is plain text: messages carry profile names, paths and errors
        from outside (``[enforce fail at …]`` is text, not a tag). Widgets' ``notify`` lands
        here too, whatever ``markup`` they pass."""
        super().notify(message, markup=False, **kwargs)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        in_field = isinstance(self.screen.focused, (Input, Select))
        if action == "leave_field":  # only offered while in a form field
            return in_field
        if action in ("show", "quit") and in_field:
            return None  # shown dimmed: a letter typed in a form is not a command
        return True

    def action_leave_field(self) -> None:
        """Escape leaves a text field, so the one-letter keys work again (Ctrl+Q always quits)."""
        self.screen.set_focus(None)

    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    async def open_in_wizard(self, profile=None, changes: dict | None = None,
                             model: str | None = None) -> None:
        """Show the wizard, loaded with ``profile`` and/or config ``changes``."""
        await self.switch_mode("wizard")  # composed before it is filled in
        wizard = self._screens["wizard"]
        if profile is not None:
            wizard.load_profile(profile)
        elif model:
            wizard.set_model(model)
        if changes:
            wizard.apply_changes(changes)

    def open_monitor(self, run_dir) -> None:
        if self.current_mode not in ("runs", "launch"):
            self.switch_mode("runs")
        # coming back, keys should navigate rather than type into the form left behind
        self.screen.set_focus(None)
        self.push_screen(MonitorScreen(run_dir))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in MAIN_SCREENS.items():
            yield SystemCommand(f"Go to {title}", f"Show the {title} screen",
                                lambda mode=mode: self.action_show(mode))
        extra = getattr(screen, "palette_commands", None)
        if extra is not None:
            yield from extra()

    # -- hardware ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def _detect(self) -> None:
        try:
            detection = detect(self.simulate)
        except Exception as exc:  # a bad --simulate spec, a broken driver: shown, not a crash
            self.post_message(HardwareDetected(None, str(exc)))
            return
        self.post_message(HardwareDetected(detection))

    @on(HardwareDetected)
    def _on_detected(self, message: HardwareDetected) -> None:
        self.detection = message.detection
        if message.detection is None:
            self.source = "unavailable"
            self.hardware_message = message.message
            return
        self.host = message.detection.host
        self.hardware_message = message.detection.message
        self.source = message.detection.source
        self.gpus = tuple(message.detection.gpus)
        if self.poll_interval and message.detection.gpus:
            self.set_timer(self.poll_interval, self._sample)

    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def _sample(self) -> None:
        try:
            if self._sampler is None:
                self._sampler = GpuSampler(self.simulate)
            snapshot = self._sampler.sample()
        except Exception as exc:  # a GPU that stops answering: keep the last readings
            self.post_message(GpusSampled(None, f"GPUs stopped answering: {exc}"))
            return
        self.post_message(GpusSampled(snapshot))

    @on(GpusSampled)
    def _on_sampled(self, message: GpusSampled) -> None:
        if message.snapshot is not None:
            self.gpus_stale = False
            self.gpus = tuple(message.snapshot.gpus)
            if self.detection is not None:
                self.hardware_message = self.detection.message
        else:
            self.gpus_stale = True
            self.hardware_message = message.error
        if self.poll_interval:
            self.set_timer(self.poll_interval, self._sample)


def run_app(simulate: str | None = None) -> int:
    """Run the full-screen app until the user quits; quitting never stops a run.

    A bad ``--simulate`` spec is bad input: ``TrainwizError`` (the CLI prints it, exit 2)
    before the screen is taken over.
    """
    if simulate is not None:
        parse_simulate(simulate)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise TrainwizError("the full-screen app needs a terminal (stdin and stdout are not "
                            "one here); in scripts use the commands, see `trainwiz --help`")
    app = TrainwizApp(simulate=simulate)
    app.run()
    return int(app.return_code or 0)
