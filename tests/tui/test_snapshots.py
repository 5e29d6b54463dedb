"""Snapshots of each main screen at 80x24 and 120x40 (SVG files in __snapshots__/).

Deterministic: a simulated box from a YAML file with fixed readings and host, no polling,
no clock in the header, animations and cursor blink off, focus taken off text fields.
Update after an intended change: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tui.conftest import wait_for
from tests.tui.fixtures import write_failed_run, write_profiles

BOX = "tests/tui/boxes/busy-2xh100.yaml"
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture
def snap_app(isolated_env, monkeypatch):
    from trainwiz.tui.app import TrainwizApp

    monkeypatch.chdir(REPO_ROOT)  # the box file is named relative to the checkout
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    write_profiles(Path(isolated_env["XDG_CONFIG_HOME"]))

    def make(**kwargs) -> TrainwizApp:
        app = TrainwizApp(simulate=BOX, poll_interval=None, **kwargs)
        app.animation_level = "none"
        return app

    return make


async def _settle(pilot) -> None:
    """No cursor, no blinking, nothing pending."""
    from textual.widgets import Input

    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    pilot.app.screen.set_focus(None)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES)
def test_gpus_screen(snap_compare, snap_app, size):
    async def before(pilot):
        await wait_for(pilot, lambda: len(pilot.app.screen.query("GpuCard")) == 2)
        await _settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_wizard_fsdp_on_two_gpus(snap_compare, snap_app, size):
    async def before(pilot):
        app = pilot.app
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.current_mode == "wizard")
        wizard = app.screen
        wizard.set_model("llama-3-8b")
        wizard.apply_changes({"strategy": "fsdp", "batch_size": 2})
        await wait_for(pilot, lambda: wizard.fits and
                       wizard.current_estimate().config.strategy == "fsdp")
        await _settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_profiles_screen_with_a_damaged_file(snap_compare, snap_app, size):
    async def before(pilot):
        await pilot.press("p")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 3)
        await _settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_launch_screen(snap_compare, snap_app, size):
    async def before(pilot):
        await pilot.press("l")
        screen = pilot.app.screen
        await wait_for(pilot, lambda: "cpu-ddp" in getattr(screen, "profiles", {}))
        screen.query_one("#launch-profile").value = "cpu-ddp"
        screen.query_one("#launch-args").value = "--steps 20"
        await _settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_runs_screen(snap_compare, snap_app, isolated_env, size):
    write_failed_run(Path(isolated_env["XDG_STATE_HOME"]))

    async def before(pilot):
        await pilot.press("r")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 1)
        pilot.app.screen._active = False  # freeze: no further polls while the shot is taken
        await _settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_monitor_of_a_run_that_ran_out_of_memory(snap_compare, snap_app, isolated_env, size):
    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]))

    async def before(pilot):
        pilot.app.open_monitor(run_dir)
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "MonitorScreen")
        monitor = pilot.app.screen
        await wait_for(pilot, lambda: monitor.status is not None and monitor.plan is not None
                       and monitor.query_one("#rank-table").row_count == 2
                       and monitor._log_lines)
        await wait_for(pilot, lambda: monitor._final_read and monitor._timer is not None)
        monitor._timer.stop()
        await _settle(pilot)

    assert snap_compare(snap_app(), terminal_size=size, run_before=before)
