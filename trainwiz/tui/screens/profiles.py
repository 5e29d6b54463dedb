"""Saved profiles: a one-line summary each; open in the wizard, duplicate, delete, export.

A summary too long for the terminal ends in "…"; the highlighted profile's whole summary (or
its whole error) is the line under the table.

Files are read in a thread worker; a damaged file is listed as such with its error and is
never rewritten.
"""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from trainwiz.profiles import (
    ProfileExistsError,
    ProfileStore,
    accelerate_config_text,
    accelerate_export_notes,
)
from trainwiz.profiles.store import atomic_write_text
from trainwiz.profiles.summary import profile_summary
from trainwiz.tui.screens.confirm import ConfirmScreen
from trainwiz.tui.screens.prompt import PromptScreen
from trainwiz.tui.widgets.footer import KeysFooter
from trainwiz.tui.widgets.lines import cut, longest, rest_width

NAME_W = 24  # a profile name longer than this is cut with "…" (the line below names it whole)


class ProfilesLoaded(Message):
    def __init__(self, entries: list, error: str | None = None) -> None:
        super().__init__()
        self.entries = entries
        self.error = error


class ProfileActionDone(Message):
    """A file operation (delete, duplicate, export) finished; ``error`` says why it failed;
    ``replace``: the file it would write exists, and this does it anyway once the user agrees
    (the app asks; "use --force" is the CLI's answer, not the app's)."""

    def __init__(self, text: str, error: str | None = None, *, exists: Path | None = None,
                 replace=None) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.exists = exists
        self.replace = replace


def short_error(message: str, path) -> str:
    """The error without the file's path (the row already names the profile)."""
    rest = message.removeprefix(str(path))
    if rest == message:
        return message
    match = re.match(r"^:(\d+):\s*", rest)
    if match:
        return f"line {match.group(1)}: {rest[match.end():]}"
    return rest.lstrip(": ")


class ProfilesScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open"),  # in the wizard: the line above the table says so
        Binding("d", "duplicate", "Duplicate"),
        Binding("delete,x", "delete", "Delete"),
        Binding("e", "export", "Export"),
        Binding("L", "launch", "Launch"),
        Binding("f5,ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading profiles…", id="profiles-status")
        yield DataTable(id="profiles-table", cursor_type="row", zebra_stripes=False)
        yield Static("", id="profiles-note")
        yield KeysFooter()  # every key at 80 columns, Quit included

    def on_mount(self) -> None:
        self.sub_title = "Profiles"
        self._widths: tuple = ()
        self._fill()

    def on_resize(self) -> None:
        self._fill()

    @staticmethod
    def _label(entry) -> str:
        return entry.name + (" (shadowed)" if entry.shadowed else "")

    @staticmethod
    def _line(entry) -> Text:
        if entry.damaged:
            first = (entry.error or "").splitlines()[0] if entry.error else ""
            return Text(f"DAMAGED: {short_error(first, entry.path)}", style="red")
        return Text(profile_summary(entry.profile, details=True))

    def _fill(self, force: bool = False) -> None:
        """The table at this width: the summary takes the room name and scope leave."""
        table = self.query_one(DataTable)
        entries = self.entries
        widths = [longest((self._label(e) for e in entries), 4, NAME_W),
                  longest((e.scope for e in entries), 5)]
        widths.append(rest_width(table, widths, self.size.width))
        if tuple(widths) == self._widths and not force:
            return
        self._widths = tuple(widths)
        row = table.cursor_row
        table.clear(columns=True)
        for label, width in zip(("name", "scope", "summary"), widths):
            table.add_column(label, width=width)
        for entry in entries:
            summary = self._line(entry)
            table.add_row(cut(self._label(entry), "bright_black" if entry.shadowed else ""),
                          cut(entry.scope), cut(summary.plain, str(summary.style)),
                          key=str(entry.path))
        if entries:
            table.move_cursor(row=min(row, len(entries) - 1))
        self._show_note()

    def _show_note(self) -> None:
        entry = self.selected()
        self.query_one("#profiles-note", Static).update(
            Text.assemble(Text(f"{self._label(entry)}: ", style="bold"), self._line(entry))
            if entry is not None else "")

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._show_note()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="profiles", exit_on_error=False)
    def _load(self) -> None:
        try:
            entries = ProfileStore().list()
        except Exception as exc:  # an unreadable folder: shown, not a crash
            self.post_message(ProfilesLoaded([], f"cannot list profiles: {exc}"))
            return
        self.post_message(ProfilesLoaded(entries))

    @on(ProfilesLoaded)
    def _loaded(self, message: ProfilesLoaded) -> None:
        self.entries = message.entries
        self._fill(force=True)
        status = self.query_one("#profiles-status", Static)
        if message.error:
            status.update(Text(message.error))
        elif not message.entries:
            status.update("No profiles yet. Make one in the wizard (w) and save it with Ctrl+S.")
        else:
            damaged = sum(1 for e in message.entries if e.damaged)
            text = (f"{len(message.entries)} profile{'s' if len(message.entries) != 1 else ''}"
                    " — Enter opens one in the wizard")
            if damaged:
                text += f" — {damaged} damaged (left as they are; fix or delete the file)"
            status.update(text)

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Open profile in the wizard", "The selected profile", self.action_open)
        yield SystemCommand("Duplicate profile", "Copy the selected profile", self.action_duplicate)
        yield SystemCommand("Delete profile", "Delete the selected profile (asks first)",
                            self.action_delete)
        yield SystemCommand("Export profile for accelerate", "Write an accelerate config file",
                            self.action_export)

    def selected(self):
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row is None or table.cursor_row >= len(self.entries):
            return None
        return self.entries[table.cursor_row]

    def _usable(self):
        entry = self.selected()
        if entry is None:
            self.notify("No profile selected.", severity="warning", timeout=2)
            return None
        if entry.damaged:
            self.notify(f"{entry.path} is damaged:\n{entry.error}", severity="error", timeout=8)
            return None
        return entry

    @on(DataTable.RowSelected)
    async def _row_selected(self) -> None:
        await self.action_open()

    async def action_open(self) -> None:
        entry = self._usable()
        if entry is not None:
            await self.app.open_in_wizard(profile=entry.profile)

    async def action_launch(self) -> None:
        entry = self._usable()
        if entry is not None:
            await self.app.switch_mode("launch")  # composed before it is filled in
            self.app.main_screen("launch").use_profile(entry.profile)

    def action_duplicate(self) -> None:
        entry = self._usable()
        if entry is None:
            return

        def chosen(new: str | None) -> None:
            if new:
                self._duplicate(entry.name, new)

        self.app.push_screen(PromptScreen(f"Duplicate {entry.name} as:", f"{entry.name}-copy"),
                             chosen)

    @work(thread=True, group="profile-files", exit_on_error=False)
    def _duplicate(self, name: str, new: str, force: bool = False) -> None:
        try:
            path = ProfileStore().copy(name, new, force=force)
        except ProfileExistsError as exc:
            self.post_message(ProfileActionDone("", exists=Path(exc.path), replace=lambda: (
                self._duplicate(name, new, force=True))))
            return
        except Exception as exc:
            self.post_message(ProfileActionDone("", str(exc)))
            return
        self.post_message(ProfileActionDone(f"Copied {name} to {path}."))

    def action_delete(self) -> None:
        entry = self.selected()
        if entry is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(entry.path)

        self.app.push_screen(ConfirmScreen(f"Delete profile {entry.name}?\n{entry.path}",
                                           yes="Delete", no="Keep"), answered)

    @work(thread=True, group="profile-files", exit_on_error=False)
    def _delete(self, path: Path) -> None:
        try:
            Path(path).unlink()
        except OSError as exc:
            self.post_message(ProfileActionDone("", f"cannot delete {path}: {exc}"))
            return
        self.post_message(ProfileActionDone(f"Deleted {path}."))

    def action_export(self) -> None:
        entry = self._usable()
        if entry is None:
            return

        def chosen(target: str | None) -> None:
            if not target:
                return
            count = len(self.app.gpus) or None
            if not Path(target).expanduser().exists():
                self._export(entry.profile, target, count)
                return
            self.app.push_screen(
                ConfirmScreen(f"{target} exists. Replace it?", yes="Replace", no="Keep it"),
                lambda yes: self._export(entry.profile, target, count, force=True) if yes
                else None)

        self.app.push_screen(PromptScreen(
            f"Export {entry.name} for `accelerate launch --config_file` to:",
            f"{entry.name}.accelerate.yaml"), chosen)

    @work(thread=True, group="profile-files", exit_on_error=False)
    def _export(self, profile, target: str, num_gpus: int | None, force: bool = False) -> None:
        """Write the accelerate config; ``num_gpus`` fills a process count the profile leaves
        open (this box's GPUs, real or simulated)."""
        try:
            text = accelerate_config_text(profile, num_gpus)
            notes = accelerate_export_notes(profile)
            path = atomic_write_text(Path(target).expanduser().resolve(), text, force=force)
        except ProfileExistsError as exc:  # written by someone else since it was asked
            self.post_message(ProfileActionDone("", exists=Path(exc.path), replace=lambda: (
                self._export(profile, target, num_gpus, force=True))))
            return
        except Exception as exc:
            self.post_message(ProfileActionDone("", str(exc)))
            return
        extra = f"\nNot in the accelerate file: {'; '.join(notes)}" if notes else ""
        self.post_message(ProfileActionDone(f"Wrote {path}.{extra}"))

    @on(ProfileActionDone)
    def _action_done(self, message: ProfileActionDone) -> None:
        if message.replace is not None:
            replace = message.replace
            self.app.push_screen(ConfirmScreen(f"{message.exists} exists. Replace it?",
                                               yes="Replace", no="Keep it"),
                                 lambda yes: replace() if yes else None)
            return
        if message.error:
            self.notify(message.error, severity="error", timeout=8)
        else:
            self.notify(message.text, timeout=4)
        self.action_reload()
