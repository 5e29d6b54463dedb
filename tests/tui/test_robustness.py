"""What goes wrong around the app is shown, never a crash: a run directory that disappears,
GPUs that stop answering, a terminal resized small and large; and the monitor alone asks
before it stops anything."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.tui.conftest import text_of, wait_for
from tests.tui.fixtures import write_failed_run


async def test_run_directory_that_disappears_is_reported(make_app, isolated_env):
    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]), running=True)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_monitor(run_dir)
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen")
        monitor = app.screen
        await wait_for(pilot, lambda: monitor.status is not None
                       and monitor.status.state == "running")
        assert "RUNNING" in text_of(monitor.query_one("#run-state"))
        shutil.rmtree(run_dir)
        await wait_for(pilot, lambda: monitor.gone, timeout=10)
        assert "is gone" in text_of(monitor.query_one("#run-state"))
        assert monitor.query_one("#rank-table").row_count == 2  # the last readings stay
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen")


class SilentGpus:
    """A sampler whose GPUs stopped answering, as NVML reports a GPU fallen off the bus."""

    def sample(self, pids_by_gpu=None):
        raise RuntimeError("NVML_ERROR_GPU_IS_LOST")


async def test_gpus_that_stop_answering_keep_their_last_readings(make_app):
    app = make_app(poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query("GpuCard")) == 2)
        app._sampler = SilentGpus()
        await wait_for(pilot, lambda: "stopped answering" in (app.hardware_message or ""))
        banner = text_of(app.screen.query_one("#mode-banner"))
        assert "PLANNING MODE" in banner  # still planning mode on a simulated box
        card = app.screen.query_one("#gpu-0")
        await wait_for(pilot, lambda: card.stale)
        assert "not answering" in text_of(card) and "/79.6 GiB" in text_of(card)
        app.poll_interval = None


async def test_every_screen_survives_resizes(make_app, isolated_env):
    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        for key in "gwplr":
            app.screen.set_focus(None)
            await pilot.press(key)
            if key == "w":
                app.screen.set_model("llama-3-8b")
                await wait_for(pilot, lambda: app.screen.fits)
            for size in ((40, 12), (200, 60), (80, 24)):
                await pilot.resize_terminal(*size)
                await pilot.pause(0.05)
        app.open_monitor(run_dir)
        await wait_for(pilot, lambda: getattr(app.screen, "status", None) is not None)
        for size in ((30, 10), (160, 50), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.05)
        assert app.is_running


async def test_monitor_alone_leaves_a_running_run_when_asked(isolated_env):
    from trainwiz.tui.monitor_app import MonitorApp

    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]), running=True)
    app = MonitorApp(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.monitor.status is not None)
        await pilot.press("q")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ChoiceScreen")
        await pilot.press("c")  # cancel: back to the monitor
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen")
        await pilot.press("q")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ChoiceScreen")
        await pilot.press("l")
    assert app.return_code == 0
    status = (run_dir / "status.json").read_text()
    assert '"state": "running"' in status  # left as it was


def test_app_process_never_imports_torch():
    from benchmarks.tui import _imports_torch

    assert not _imports_torch()


def test_ranks_ended_by_a_stop_read_stopped_not_failed():
    from types import SimpleNamespace

    from trainwiz.tui.screens.monitor import rank_state

    killed = SimpleNamespace(rank=0, exit_code=-15, pid=10)
    assert rank_state(killed, "stopped") == "stopped"
    # ended by torchrun after rank 1 failed: only rank 1 reads "failed"
    assert rank_state(killed, "failed", failed_rank=1) == "stopped"
    assert rank_state(SimpleNamespace(rank=1, exit_code=-9, pid=11), "failed", 1) == "failed"
    assert rank_state(killed, "failed") == "failed"  # no rank named: nothing to say otherwise
    assert rank_state(SimpleNamespace(exit_code=0, pid=10), "stopped") == "done"
