"""Helpers for the app's tests: the app runs in-process against simulated GPUs."""

from __future__ import annotations

import pytest

SIM = "2xH100-80GB"


def text_of(widget) -> str:
    """What a widget shows, as plain text (rendered at its current size)."""
    rendered = widget.render()
    return getattr(rendered, "plain", None) or str(rendered)


async def wait_for(pilot, predicate, timeout: float = 10.0, step: float = 0.05):
    """Let the app run until ``predicate()`` is true (workers post their results)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(step)
        try:
            if predicate():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            name = getattr(predicate, "__name__", predicate)
            raise AssertionError(f"timed out waiting for {name}")


async def open_the_one_profile(pilot, app):
    """Profiles screen (one profile saved), Enter on it: the wizard it opens."""
    await pilot.press("p")
    table = app.screen.query_one("DataTable")
    await wait_for(pilot, lambda: table.row_count == 1)
    table.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.current_mode == "wizard")
    return app.screen


@pytest.fixture
def make_app(isolated_env):
    """A TrainwizApp on simulated GPUs with private XDG dirs; no periodic polling."""
    from trainwiz.tui.app import TrainwizApp

    def make(simulate: str | None = SIM, **kwargs):
        kwargs.setdefault("poll_interval", None)
        return TrainwizApp(simulate=simulate, **kwargs)

    return make
