"""Launch: script, arguments, interpreter, the preflight results, then launch."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class LaunchScreen(Screen):
    def __init__(self) -> None:
        super().__init__()
        self.profile = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Launching is not available yet.", id="launch-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Launch"

    def use_profile(self, profile) -> None:
        self.profile = profile
