"""Runs: this user's active and past runs (newest first); Enter attaches the monitor.

One line a run at any width: the note (why it failed, or how it went) takes the room left and
ends in "…" when cut; the whole note of the highlighted run is the line under the table. The
script column gives way first below 100 columns (the monitor names it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from trainwiz.launchers import list_runs, stop_run
from trainwiz.launchers.failures import failure_summary
from trainwiz.launchers.runinfo import (
    SIM_NOTE,
    duration,
    progress_parts,
    read_progress,
    run_kind,
)
from trainwiz.tui.screens.confirm import ConfirmScreen
from trainwiz.tui.screens.monitor import STATE_STYLE
from trainwiz.tui.widgets.lines import cut, longest, rest_width

POLL_S = 2.0
WIDE = 100  # columns from which the script column is shown
NAME_W = 16  # a profile or script name longer than this is cut with "…"


class RunsListed(Message):
    def __init__(self, runs: list, error: str | None = None,
                 progress: dict | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.error = error
        self.progress = progress or {}  # run id -> its progress.json's "progress", if any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsListed)


def _seconds(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def describe(status, progress: dict | None = None) -> str:
    """A failed run: the failure, in the words `trainwiz runs` uses. Any other: its note (why it
    stopped), how long it ran (start to end, as recorded) and the progress read from rank 0's
    output; only figures that were recorded or read."""
    if status.failure is not None:
        return failure_summary(status.failure)
    parts = [status.message] if status.message else []
    if status.finished and not status.damaged:
        took = _seconds(status.started_at, status.ended_at)
        if took is not None:
            parts.append(f"ran {duration(took)}")
    if not status.damaged:
        parts += progress_parts(progress, finished=status.finished)
    return " · ".join(parts)


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "attach", "Attach"),
        Binding("s", "stop", "Stop run"),
        Binding("f5,ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list = []
        self._progress: dict = {}
        self._widths: tuple = ()
        self._active = False
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading runs…", id="runs-status")
        yield DataTable(id="runs-table", cursor_type="row")
        yield Static("", id="runs-note")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        self._set_columns()

    def on_resize(self) -> None:
        self._set_columns()

    def _set_columns(self) -> None:
        """Columns for this width: the note takes what the others leave, so it ends in "…"
        on screen instead of running off its edge."""
        table = self.query_one(DataTable)
        wide = self.size.width >= WIDE
        runs = self.runs
        widths = {
            "run": longest((r.id for r in runs), 20),
            "state": longest((str(r.state) for r in runs), 9),
            "profile": longest((r.profile or "-" for r in runs), 7, NAME_W),
            "script": longest((Path(r.script).name if r.script else "-" for r in runs),
                              6, NAME_W) if wide else 0,
            "ranks": 5,
        }
        widths["note"] = rest_width(table, widths.values(), self.size.width)
        key = tuple(widths.values())
        if key == self._widths:
            return
        self._widths = key
        row = table.cursor_row
        table.clear(columns=True)
        for name, width in widths.items():
            if width:  # the id is the time the run started, UTC, as `trainwiz runs` says
                table.add_column("run (UTC start)" if name == "run" else name, width=width,
                                 key=name)
        for run in runs:
            table.add_row(*self._cells(run), key=run.id)
        if runs:
            table.move_cursor(row=min(row, len(runs) - 1))

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
        progress = {}
        for run in runs:
            if not run.damaged and run.failure is None and run.run_dir:
                data = read_progress(run.run_dir)
                progress[run.id] = (data or {}).get("progress")
        self.post_message(RunsListed(runs, progress=progress))

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
        same = keys == [r.id for r in self.runs]
        self.runs, self._progress = message.runs, message.progress
        if not same:
            self._widths = ()
            self._set_columns()
            if message.runs:
                table.move_cursor(row=min(row, len(message.runs) - 1))
        else:
            for run in message.runs:
                for col, value in zip(table.ordered_columns, self._cells(run)):
                    table.update_cell(run.id, col.key, value)
        self._show_note()
        active = sum(1 for r in message.runs if not r.finished and not r.damaged)
        if not message.runs:
            status.update("No runs yet. Launch one from a profile (l) or with `trainwiz launch`.")
        else:
            count = len(message.runs)
            text = Text(f"{count} run{'s' if count != 1 else ''}, {active} active · "
                        "Enter: monitor · leaving it or quitting never stops a run")
            if any(run_kind(r) == "sim" for r in message.runs):
                text.append("\n" + SIM_NOTE, style="yellow")
            status.update(text)

    def _poll_again(self) -> None:
        if self._active:
            self._list()

    def note(self, run) -> str:
        return describe(run, self._progress.get(run.id))

    def _cells(self, run) -> tuple:
        sim = run_kind(run) == "sim"
        cells = [cut(run.id), cut(str(run.state), STATE_STYLE.get(run.state, "")),
                 cut(run.profile or "-")]
        if self._widths and self._widths[3]:
            cells.append(cut(Path(run.script).name if run.script else "-"))
        cells += [Text.assemble(str(len(run.ranks)), (" sim", "yellow") if sim else "",
                                no_wrap=True), cut(self.note(run))]
        return tuple(cells)

    def _show_note(self) -> None:
        """The highlighted run's whole note (and its simulated box), wrapped under the table."""
        run = self.selected()
        text = Text()
        if run is not None:
            if run_kind(run) == "sim":
                text.append(f"simulated {run.simulate}", style="yellow")
            note = self.note(run)
            if note:
                text.append((" · " if text else "") + note)
        self.query_one("#runs-note", Static).update(text)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._show_note()

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
