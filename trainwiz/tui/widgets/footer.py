"""The footer of the screens with many keys: compact, and the command palette's hint only
where the terminal is wide enough, so that at 80 columns every key (quit included) shows."""

from __future__ import annotations

from textual.widgets import Footer

PALETTE_HINT = 100  # columns from which the footer also shows the command palette's key


class KeysFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(compact=True, **kwargs)

    def on_mount(self) -> None:
        self.show_command_palette = self.app.size.width >= PALETTE_HINT

    def on_resize(self) -> None:
        wide = self.app.size.width >= PALETTE_HINT
        if self.show_command_palette != wide:
            self.show_command_palette = wide
            self.call_after_refresh(self.recompose)
