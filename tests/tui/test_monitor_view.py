"""The monitor of a run on 8 GPUs at 80×24: every rank readable, the estimate against what each
rank measured, plots that read without colour, and a finished run that offers no stop."""

from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import text_of, wait_for
from tests.tui.fixtures import write_failed_run, write_gpu_run


async def _open(isolated_env, monkeypatch, **kw):
    from trainwiz.tui.monitor_app import MonitorApp

    monkeypatch.setenv("NO_COLOR", "1")
    return MonitorApp(write_gpu_run(Path(isolated_env["XDG_STATE_HOME"]), **kw))


async def test_eight_gpus_at_80x24_with_the_estimate_and_a_rank_over_it(isolated_env, monkeypatch):
    app = await _open(isolated_env, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = app.monitor
        table = monitor.query_one("#rank-table")
        await wait_for(pilot, lambda: table.row_count == 8 and monitor._log_lines
                       and table.region.height >= 9)
        assert table.region.height >= 9  # the header and all 8 ranks, no scrolling
        assert monitor.query_one("#rank-log").region.height >= 5  # a log worth reading
        columns = [str(c.label) for c in table.ordered_columns]
        est = columns.index("est. peak")
        cells = [str(table.get_row_at(i)[est]) for i in range(8)]
        assert "+20%" in cells[3] and all("%" in c and "+20%" not in c
                                          for i, c in enumerate(cells) if i != 3)
        warning = text_of(monitor.query_one("#run-failure"))
        assert "20% over the estimate" in warning and "rank 3" in warning
        assert "likely:" in warning and "batch 2 x seq 4096" in warning
        progress = text_of(monitor.query_one("#run-progress"))
        assert "step 120/400" in progress and "9m20s left" in progress
        assert "tok/s (plan" in progress  # from the plan, and said so
        # beside it, the time model's tokens/s for this plan on these GPUs (real GPUs only)
        await wait_for(pilot, lambda: monitor.estimated_tokens_per_s is not None)
        assert "; est. " in text_of(monitor.query_one("#run-progress"))

        await pilot.press("v")  # the loss curve
        plot = monitor.query_one("#run-plot")
        await wait_for(pilot, lambda: "step" in text_of(plot))
        assert plot.display and not monitor.query_one("#rank-log").display
        await pilot.press("v")  # memory over time against the estimate line
        # without colour every series has its own marker and the estimate is a line of "=";
        # rank 3 (the fourth marker, "o") is drawn above it
        await wait_for(pilot, lambda: "=" * 20 in text_of(plot))
        lines = text_of(plot).splitlines()
        estimate_row = next(i for i, line in enumerate(lines) if "=" * 20 in line)
        assert any("o" in line for line in lines[:estimate_row])
        assert "= is the estimated peak" in text_of(monitor.query_one("#log-title"))
        await pilot.press("v")
        assert monitor.query_one("#rank-log").display


async def test_a_finished_run_offers_back_and_shows_peaks_not_the_last_reading(
        isolated_env, monkeypatch):
    app = await _open(isolated_env, monkeypatch, state="stopped", over=1.0)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = app.monitor
        table = monitor.query_one("#rank-table")
        await wait_for(pilot, lambda: table.row_count == 8 and monitor.status is not None)
        memory = [str(c.label) for c in table.ordered_columns].index("GPU memory GiB")
        await wait_for(pilot, lambda: str(table.get_row_at(7)[memory]).startswith("peak "))
        assert all(str(table.get_row_at(i)[memory]).startswith("peak ") for i in range(8))
        shown = {b.binding.description for b in monitor.active_bindings.values()
                 if b.binding.show and b.enabled}
        assert "Back" in shown and "Stop run" not in shown
        assert not any("keeps running" in d for d in shown)
        await pilot.press("s")  # no stop on a stopped run, not even by its key
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "MonitorScreen"


async def test_at_80x24_every_key_of_a_running_run_shows_and_cut_titles_end_in_an_ellipsis(
        make_app, isolated_env):
    from textual.widgets import Footer

    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]), running=True)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        app.open_monitor(run_dir)
        await wait_for(pilot, lambda: getattr(app.screen, "status", None) is not None)
        monitor = app.screen
        await wait_for(pilot, lambda: any(k.key == "q" and k.region.width for k in
                                          monitor.query_one(Footer).query("FooterKey")))
        keys = [k for k in monitor.query_one(Footer).query("FooterKey") if k.display]
        shown = [k.key for k in keys if k.region.right <= 80 and k.region.width]
        for wanted in ("s", "escape", "v", "g", "q"):  # stop, leave, view, screens, quit
            assert wanted in shown, shown
        # the memory panels of a run on simulated GPUs say so, the estimate column too
        table = monitor.query_one("#rank-table")
        labels = [str(c.label) for c in table.ordered_columns]
        assert "SIMULATED GPU GiB" in labels
        est = labels.index("est. peak")
        assert [str(table.get_row_at(i)[est]) for i in range(2)] == ["simulated"] * 2
        await pilot.press("v", "v")  # the memory view: its title is longer than 80 columns
        await wait_for(pilot, lambda: "SIMULATED GPU memory" in text_of(
            monitor.query_one("#log-title")))
        await wait_for(pilot, lambda: monitor.query_one("#run-progress").render_line(0)
                       .text.rstrip().endswith("…"))
        for selector in ("#log-title", "#run-progress"):
            line = monitor.query_one(selector).render_line(0).text.rstrip()
            assert line.endswith("…"), (selector, line)
