"""Runs: active and past runs of this user; attach opens the monitor."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class RunsScreen(Screen):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("The run list is not available yet.", id="runs-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Runs"
