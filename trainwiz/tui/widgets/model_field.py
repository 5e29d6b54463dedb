"""The wizard's model field: the text the user types, completion from the catalog and paths, and
the model it names (resolved in a thread worker: a path means a file read), shown under it.

Posts ``ModelField.Resolved(spec, model, error)`` for the latest text only.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from trainwiz.errors import TrainwizError
from trainwiz.estimator.catalog import catalog_names
from trainwiz.plan import resolve_model
from trainwiz.tui import fmt
from trainwiz.tui.widgets.model_suggester import ModelSuggester


def short_error(message: str, limit: int = 110) -> str:
    """The first sentences of an error, for the one line under the model input."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1].rstrip() + "…"


class ModelField(Vertical):
    DEFAULT_CSS = """
    ModelField { height: auto; }
    """

    class Resolved(Message):
        def __init__(self, spec: str, model, error: str | None) -> None:
            super().__init__()
            self.spec = spec
            self.model = model
            self.error = error

    class _Catalog(Message):
        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.catalog: list[str] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="catalog name, HF id or path to config.json", id="model",
                    compact=True)
        yield Static("", id="model-status")

    def on_mount(self) -> None:
        self._load_catalog()

    @property
    def value(self) -> str:
        return self.query_one("#model", Input).value.strip()

    @value.setter
    def value(self, spec: str) -> None:
        self.query_one("#model", Input).value = spec

    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False)
    def _load_catalog(self) -> None:
        self.post_message(self._Catalog(catalog_names()))

    @on(_Catalog)
    def _catalog_loaded(self, message: _Catalog) -> None:
        message.stop()
        self.catalog = message.names
        self.query_one("#model", Input).suggester = ModelSuggester(message.names)

    @on(Input.Changed, "#model")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        spec = event.value.strip()
        if not spec:
            self._show(None, None)
            self.post_message(self.Resolved("", None, None))
            return
        self._resolve(spec)

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def _resolve(self, spec: str) -> None:
        try:
            model, error = resolve_model(spec), None
        except TrainwizError as exc:
            model, error = None, str(exc)
        except OSError as exc:  # a file that cannot be read: shown under the field
            model, error = None, f"{type(exc).__name__}: {exc}"
        if not get_current_worker().is_cancelled:
            self.post_message(self.Resolved(spec, model, error))

    @on(Resolved)
    def _resolved(self, message: Resolved) -> None:
        if message.spec != self.value:
            message.stop()  # typed on since; a newer resolution is coming
            return
        self._show(message.model, message.error)

    def _show(self, model, error: str | None) -> None:
        status = self.query_one("#model-status", Static)
        if model is not None:
            status.update(Text(f"{model.name}: {fmt.params(model.params)} parameters"))
        else:
            status.update(Text(short_error(error or "")))
        status.set_class(model is None and bool(error), "error")
