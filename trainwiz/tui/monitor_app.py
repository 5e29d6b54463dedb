"""The monitor alone, full-screen: what ``trainwiz launch`` (without --detach) and
``trainwiz attach`` show on a terminal. q or Ctrl+C asks: stop the run, or leave it running."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from trainwiz.tui.screens.confirm import ChoiceScreen
from trainwiz.tui.screens.monitor import MonitorScreen


class MonitorApp(App):
    CSS_PATH = ["styles/app.tcss"]
    TITLE = "trainwiz"

    BINDINGS = [
        Binding("q", "ask_quit", "Quit"),
        Binding("ctrl+c", "ask_quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.outcome = "left"  # "left" running, "stopped", or the run's final state

    def on_mount(self) -> None:
        self.monitor = MonitorScreen(self.run_dir, standalone=True)
        self.push_screen(self.monitor)

    def action_ask_quit(self) -> None:
        status = self.monitor.status
        if status is None or status.finished or self.monitor.gone:
            self.exit(return_code=self._code())
            return
        if isinstance(self.screen, ChoiceScreen):
            return

        def chosen(key: str | None) -> None:
            if key == "s":
                self.outcome = "stopped"
                self.monitor.stop_run()
                self.notify("Stopping the run…")
                self.set_timer(0.5, self._exit_when_finished)
            elif key == "l":
                self.monitor.action_leave()

        self.push_screen(ChoiceScreen(
            f"Run {self.run_dir.name} is still running. Stop it, or leave it running "
            "(attach again with `trainwiz attach`)?",
            [("s", "Stop the run"), ("l", "Leave it running"), ("c", "Cancel")]), chosen)

    def _exit_when_finished(self) -> None:
        status = self.monitor.status
        if status is not None and status.finished:
            self.exit(return_code=self._code())
        else:
            self.set_timer(0.5, self._exit_when_finished)

    def _code(self) -> int:
        status = self.monitor.status
        if status is None:
            return 1
        if status.state == "succeeded" or not status.finished:
            return 0
        return 1


def run_monitor(run_dir: Path) -> int:
    """Show the monitor of ``run_dir`` until the user leaves; returns an exit code: 0 when the
    run succeeded or was left running, 1 when it failed or was stopped (as the plain view)."""
    app = MonitorApp(Path(run_dir))
    app.run()
    return int(app.return_code or 0)
