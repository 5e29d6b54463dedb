"""Runs: this user's active and past runs (newest first); Enter attaches the monitor."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from trainwiz.launchers import list_runs, stop_run
from trainwiz.tui.screens.confirm import ConfirmScreen
from trainwiz.tui.screens.monitor import STATE_STYLE

POLL_S = 2.0


class RunsListed(Message):
    def __init__(self, runs: list, error: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsListed)


def describe(status) -> str:
    if status.failure is not None:
        fail = status.failure
        oom = " (out of memory)" if fail.oom else ""
        first = (fail.message or "").splitlines()[0] if fail.message else ""
        who = f"rank {fail.rank}" if fail.rank is not None else "launcher"
        return f"{who}: {first}{oom}"
    return status.message or ""


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "attach", "Attach"),
        Binding("s", "stop", "Stop run"),
        Binding("f5,ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list = []
        self._active = False
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading runs…", id="runs-status")
        table = DataTable(id="runs-table", cursor_type="row")
        table.add_columns("run", "state", "profile", "script", "started", "ranks", "note")
        yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Runs"

    def on_screen_resume(self) -> None:
        self._active = True
        self._list()

    def on_screen_suspend(self) -> None:
        self._active = False  # no polling while another screen is shown

    def action_reload(self) -> None:
        self._list()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def _list(self) -> None:
        try:
            runs = list_runs()
        except Exception as exc:  # a run folder that vanished mid-read, permissions
            self.post_message(RunsListed([], f"cannot list runs: {exc}"))
            return
        self.post_message(RunsListed(runs))

    @on(RunsListed)
    def _listed(self, message: RunsListed) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(POLL_S, self._poll_again) if self._active else None
        status = self.query_one("#runs-status", Static)
        if message.error:
            status.update(Text(message.error, style="red"))
            return
        table = self.query_one(DataTable)
        row = table.cursor_row
        keys = [r.id for r in message.runs]
        if keys != [r.id for r in self.runs]:
            table.clear()
            for run in message.runs:
                table.add_row(*self._cells(run), key=run.id)
            if message.runs:
                table.move_cursor(row=min(row, len(message.runs) - 1))
        else:
            for run in message.runs:
                for col, value in zip(table.ordered_columns, self._cells(run)):
                    table.update_cell(run.id, col.key, value)
        self.runs = message.runs
        active = sum(1 for r in message.runs if not r.finished)
        if not message.runs:
            status.update("No runs yet. Launch one from a profile (l) or with `trainwiz launch`.")
        else:
            count = len(message.runs)
            status.update(f"{count} run{'s' if count != 1 else ''}, {active} active — "
                          "Enter attaches; "
                          "leaving the monitor or quitting never stops a run")

    def _poll_again(self) -> None:
        if self._active:
            self._list()

    @staticmethod
    def _cells(run) -> tuple:
        started = (run.started_at or "").replace("T", " ")[:19]
        return (Text(run.id), Text(run.state, style=STATE_STYLE.get(run.state, "")),
                Text(run.profile or "-"), Text(Path(run.script).name if run.script else "-"),
                Text(started), str(len(run.ranks)), Text(describe(run)))

    def selected(self):
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_attach()

    def action_attach(self) -> None:
        run = self.selected()
        if run is None:
            self.notify("No run selected.", severity="warning", timeout=2)
            return
        self.app.open_monitor(Path(run.run_dir))

    def action_stop(self) -> None:
        run = self.selected()
        if run is None or run.finished:
            self.notify("Select a run that is still going.", severity="warning", timeout=2)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._stop(run.run_dir)

        self.app.push_screen(ConfirmScreen(f"Stop run {run.id}?", yes="Stop the run",
                                           no="Keep it running"), answered)

    @work(thread=True, group="stop", exit_on_error=False)
    def _stop(self, run_dir: str) -> None:
        try:
            stop_run(run_dir)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"Could not stop: {exc}", severity="error")
        self.app.call_from_thread(self._list)
