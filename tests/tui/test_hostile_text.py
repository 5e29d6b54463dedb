"""Text from outside (log lines, failure messages, model names, file and profile names, GPU and
process names) is shown as text on every screen, never read as Rich markup: no MarkupError, and
nothing in square brackets disappears."""

from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import text_of, wait_for
from tests.tui.fixtures import write_failed_run

GLOO = ("RuntimeError: [/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:534] "
        "Connection closed by peer")
ENFORCE = "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough memory"


def _hostile_run(state_home: Path) -> Path:
    """The recorded failed run, its failure and logs rewritten with bracketed text."""
    from trainwiz.launchers.rundir import Failure, read_status, save_status

    run_dir = write_failed_run(state_home)
    status = read_status(run_dir, check_alive=False)
    status.profile = "[bold]prof"
    status.script = "/work/[/x]/train[bold].py"
    status.failure = Failure(rank=1, exit_code=1, oom=False, message=GLOO)
    save_status(run_dir, status)
    log = run_dir / "torchrun" / "snap" / "attempt_0" / "1" / "stdout.log"
    log.write_text(f"step 1 [/x]\n{ENFORCE}\n{GLOO}\n")
    return run_dir


def _hostile_box(tmp_path: Path) -> str:
    box = tmp_path / "[bold]box.yaml"
    box.write_text("gpus:\n"
                   "  - name: \"[/x] card [bold]\"\n"
                   "    memory_total: 24GiB\n"
                   "    memory_used: 4GiB\n"
                   "    processes:\n"
                   "      - {pid: 4242, memory_used: 4GiB, name: \"[/pytorch/x]\"}\n"
                   "  - preset: H100-80GB\n")
    return str(box)


def _screen_text(screen) -> str:
    """Everything the screen's Statics, cards and tables show, as plain text."""
    parts = []
    for widget in screen.query("*"):
        if type(widget).__name__ in ("Static", "Label", "GpuCard", "MemoryPanel"):
            parts.append(str(text_of(widget)))
    for table in screen.query("DataTable"):
        for row in range(table.row_count):
            parts.extend(str(getattr(c, "plain", c)) for c in table.get_row_at(row))
    return "\n".join(parts)


async def test_hostile_text_on_every_screen(make_app, isolated_env, tmp_path):
    _hostile_run(Path(isolated_env["XDG_STATE_HOME"]))
    profiles = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "broken.yaml").write_text("strategy: [/x]\n")
    (profiles / "[bold]odd[x].yaml").write_text(  # a file name, and a GPU name it recorded
        "strategy: ddp\nhardware: {gpu: \"[/x] card\", gpu_memory: 1000, gpus_per_machine: 2}\n")
    (profiles / "good.yaml").write_text("version: 1\nstrategy: ddp\n"
                                        "description: \"[bold]the [/x] one\"\n"
                                        "estimate:\n  model: \"[/x]\"\n")
    app = make_app(simulate=_hostile_box(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query("GpuCard")) == 2)
        shown = _screen_text(app.screen)
        assert "[/x] card [bold]" in shown and "[/pytorch/x]" in shown

        app.screen.set_focus(None)
        await pilot.press("w")
        wizard = app.screen
        wizard.set_model("[/x]")
        await wait_for(pilot, lambda: "[/x]" in text_of(wizard.query_one("#model-status")))
        assert "[/x]" in text_of(wizard.query_one("#model-status"))
        wizard.set_model("[bold]")
        await wait_for(pilot, lambda: "[bold]" in text_of(wizard.query_one("#model-status")))

        wizard.set_focus(None)
        await pilot.press("p")
        await wait_for(pilot, lambda: "[bold]odd[x]" in _screen_text(app.screen))
        shown = _screen_text(app.screen)
        assert "[/x]" in shown and "[bold]odd[x]" in shown

        app.screen.set_focus(None)
        await pilot.press("l")  # profile names in the launch list, the plan's GPU names
        await wait_for(pilot, lambda: "[bold]odd[x]" in app.screen.profiles)
        app.screen.query_one("#launch-profile").value = "[bold]odd[x]"
        await wait_for(pilot, lambda: "[/x] card" in text_of(app.screen.query_one(
            "#launch-status")))

        app.screen.set_focus(None)
        await pilot.press("r")
        await wait_for(pilot, lambda: "train[bold].py" in _screen_text(app.screen))
        shown = _screen_text(app.screen)
        assert "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:534]" in shown
        assert "[bold]prof" in shown and "train[bold].py" in shown

        app.open_monitor(Path(app.screen.runs[0].run_dir))
        await wait_for(pilot, lambda: getattr(app.screen, "status", None) is not None)
        await wait_for(pilot, lambda: "pair.cc:534]" in _screen_text(app.screen))
        shown = _screen_text(app.screen)
        assert "pair.cc:534]" in shown
        assert app.is_running


async def test_hostile_text_in_notifications_dialogs_and_launch(make_app):
    from trainwiz.tui.screens.confirm import ConfirmScreen

    app = make_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        app.screen.notify(GLOO)  # what the screens pass on from errors
        app.notify(ENFORCE)
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) >= 2)
        toasts = " ".join(str(text_of(t)) for t in app.screen.query("Toast"))
        assert "[enforce fail at alloc_cpu.cpp:127]" in toasts and "pair.cc:534]" in toasts
        app.push_screen(ConfirmScreen(f"Replace {ENFORCE}?", yes="[/x]"))
        await wait_for(pilot, lambda: "[enforce fail" in _screen_text(app.screen))
        await pilot.press("n")
        app.screen.set_focus(None)
        await pilot.press("l")
        launch = app.screen
        launch._show(error=GLOO)
        await wait_for(pilot, lambda: "pair.cc:534]" in text_of(launch.query_one("#launch-status")))
        assert "pair.cc:534]" in text_of(launch.query_one("#launch-status"))
        assert app.is_running


async def test_control_characters_in_a_failure_and_a_log_never_reach_the_terminal(
        make_app, isolated_env):
    """Rank 1 raised RuntimeError("[/] [bold]boom[/bold] ünï \\x1b[2J") and logged coloured
    lines: the monitor's failure line and the rank's log show the words, brackets and all,
    and no escape sequence (an ESC written to the terminal cleared the whole screen)."""
    from textual.widgets import Log

    from trainwiz.launchers.rundir import Failure, read_status, save_status

    run_dir = write_failed_run(Path(isolated_env["XDG_STATE_HOME"]))
    status = read_status(run_dir, check_alive=False)
    boom = "RuntimeError: [/] [bold]boom[/bold] ünï \x1b[2J"
    status.failure = Failure(rank=1, exit_code=1, oom=False, message=boom)
    save_status(run_dir, status)
    log = run_dir / "torchrun" / "snap" / "attempt_0" / "1" / "stdout.log"
    log.write_text(f"step 1 \x1b[32mloss\x1b[0m 2.29\x07\n{boom}\n")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        app.open_monitor(run_dir)
        await wait_for(pilot, lambda: getattr(app.screen, "status", None) is not None)
        rank_log = app.screen.query_one("#rank-log", Log)
        await wait_for(pilot, lambda: any("boom" in line for line in rank_log.lines))
        shown = _screen_text(app.screen) + "\n".join(rank_log.lines)
        assert "[/] [bold]boom[/bold] ünï" in shown and "step 1 loss 2.29" in shown
        assert not any(ch in shown for ch in "\x1b\x07\ufffd")
