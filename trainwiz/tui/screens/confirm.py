"""A yes/no question in a modal; dismisses with True or False."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(Text(f"{self.yes} (y)"), id="yes", variant="error", compact=True)
                yield Button(Text(f"{self.no} (n)"), id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChoiceScreen(ModalScreen[str]):
    """A question with several answers, each on its own key; dismisses with the key."""

    BINDINGS = [Binding("escape", "choose('')", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        """``choices``: (key, label) pairs, e.g. [("s", "Stop the run"), ("l", "Leave it")]."""
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            with Horizontal(classes="buttons"):
                for key, label in self.choices:
                    yield Button(Text(f"{label} ({key})"), id=f"choice-{key}", compact=True)

    def on_mount(self) -> None:
        self.query(Button).last().focus()

    def on_key(self, event) -> None:
        if event.key in {key for key, _ in self.choices}:
            event.stop()
            self.dismiss(event.key)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_choose(self, key: str) -> None:
        self.dismiss(key)
