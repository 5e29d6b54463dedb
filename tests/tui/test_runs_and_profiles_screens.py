"""The app's Runs and Profiles screens at 80 and 120 columns.

Runs: one line a run that fits the terminal (a cut note ends in "…" and is shown whole under
the table), a note for runs that went well too, and runs on simulated GPUs labelled so.
Profiles: a summary too long for the terminal ends in "…" and is shown whole under the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import text_of, wait_for
from tests.tui.fixtures import RUN_ID, write_failed_run, write_profiles
from trainwiz.profiles import load_profile
from trainwiz.profiles.summary import profile_summary

DONE_ID = "20260101-130000-done"


def _write_succeeded_run(state_home: Path) -> None:
    from trainwiz.launchers.rundir import RankStatus, RunStatus, save_status
    from trainwiz.launchers.runinfo import write_json_atomic

    run_dir = Path(state_home) / "trainwiz" / "runs" / DONE_ID
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "progress.json", {"progress": {
        "step": 20, "total": 20, "loss": 6.035, "steps_per_s": 0.5}})
    save_status(run_dir, RunStatus(
        id=DONE_ID, state="succeeded", profile="cpu-ddp", script="/work/train_ddp.py",
        started_at="2026-01-01T13:00:00+00:00", ended_at="2026-01-01T13:00:42+00:00",
        run_dir=str(run_dir), device="cpu", num_processes=2,
        ranks=[RankStatus(rank=r, pid=7000 + r, exit_code=0) for r in range(2)]))


def _rows(table) -> dict:
    """Each row as drawn on screen, by run id."""
    lines = [table.render_line(y).text for y in range(table.size.height)]
    return {line.split()[0]: line for line in lines[1:] if line.strip()}


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_runs_fit_the_terminal_and_say_how_each_went(make_app, isolated_env, size):
    state = Path(isolated_env["XDG_STATE_HOME"])
    write_failed_run(state)  # rank 1 out of memory, on a simulated 2xH100 box
    _write_succeeded_run(state)
    damaged = Path(state) / "trainwiz" / "runs" / "20250101-000000-dmgd"
    damaged.mkdir()
    (damaged / "command.json").write_text("{}")  # a run folder whose status.json is gone
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("r")
        screen = app.screen
        table = screen.query_one("DataTable")
        # laid out: the notes drawn (not just added), however slow the machine
        await wait_for(pilot, lambda: "ran 42s" in _rows(table)[DONE_ID])
        rows = _rows(table)
        failed, done = rows[RUN_ID], rows[DONE_ID]
        # the failure is cut with "…" within the screen, never off its edge
        assert "rank 1: torch.OutOf" in failed and failed.rstrip().endswith("…")
        # a run that went well: how long it ran and how far it got, as recorded and read
        assert "ran 42s · step 20/20" in done
        screen.query_one("DataTable").move_cursor(row=0)
        await wait_for(pilot, lambda: "ran 42s" in text_of(screen.query_one("#runs-note")))
        assert text_of(screen.query_one("#runs-note")) == (
            "ran 42s · step 20/20 · loss 6.035 · 2 s/step")
        # a damaged folder is listed, never counted as running
        assert "3 runs, 0 active" in text_of(screen.query_one("#runs-status"))
        # on simulated GPUs: labelled, with what that means
        assert " 2 sim " in failed and " 2 sim " not in done
        assert "simulated" in text_of(screen.query_one("#runs-status"))
        # the highlighted run's whole note, under the table
        screen.query_one("DataTable").move_cursor(row=1)
        await wait_for(pilot, lambda: "rank 1" in text_of(screen.query_one("#runs-note")))
        note = " ".join(text_of(screen.query_one("#runs-note")).split())
        assert note == ("simulated 2xH100-80GB · rank 1: torch.OutOfMemoryError: CUDA out of "
                        "memory. Tried to allocate 1.96 GiB (exit code 1, out of memory)")


async def test_profile_summaries_too_long_for_80_columns_end_in_an_ellipsis(make_app,
                                                                           isolated_env):
    write_profiles(Path(isolated_env["XDG_CONFIG_HOME"]))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("p")
        screen = app.screen
        table = screen.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 3 and len(_rows(table)) == 3)
        rows = _rows(table)
        assert rows["broken"].rstrip().endswith("…") and "DAMAGED: line 1" in rows["broken"]
        assert rows["llama-fsdp"].rstrip().endswith("…")
        assert not rows["cpu-ddp"].rstrip().endswith("…")  # one that fits is not cut
        # the highlighted profile's whole summary, under the table
        screen.query_one("DataTable").move_cursor(row=2)
        await wait_for(pilot, lambda: "llama-fsdp:" in text_of(screen.query_one("#profiles-note")))
        note = " ".join(text_of(screen.query_one("#profiles-note")).split())
        whole = profile_summary(load_profile("llama-fsdp"), details=True)
        assert len(whole) > 60 and note == f"llama-fsdp: {whole}"
        # every key of the screen on the footer at 80 columns, Screens and Quit included
        screen.set_focus(None)  # the screen's own Enter ("Open") shows, as no field has it

        def shown():
            keys = [k for k in screen.query("FooterKey") if k.display and k.region.width]
            return [k.key for k in keys if k.region.right <= 80]

        await wait_for(pilot, lambda: "enter" in shown())  # the footer recomposed
        shown = shown()
        assert {"enter", "d", "delete", "e", "L", "g", "q"} <= set(shown), shown
