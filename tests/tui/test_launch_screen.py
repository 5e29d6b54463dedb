"""The Launch screen: each profile's own status, the port the check names is the port the run
gets, a profile file can be chosen by path, and profiles saved elsewhere show up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tui.conftest import text_of, wait_for


@pytest.fixture
def stopped_launches(isolated_env, monkeypatch):
    """A user profile 'cpu-a'; Launch records (profile name, preflight) and stops there."""
    import trainwiz.tui.screens.launch as launch_module

    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "cpu-a.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\n"
                                       "num_processes: 2\n")
    started = []

    def fake_start(profile, script, args, *, pre=None, **kwargs):
        started.append((profile.name, pre))
        raise launch_module.TrainwizError("stopped here by the test")

    monkeypatch.setattr(launch_module, "start", fake_start)
    monkeypatch.chdir(REPO_ROOT)
    return folder, started


async def test_launch_screen_follows_the_profile_chosen(make_app, stopped_launches):
    folder, started = stopped_launches
    (folder / "h100x8.yaml").write_text(
        "version: 1\nstrategy: ddp\nnum_processes: 8\n"
        "hardware: {gpu: NVIDIA H100 80GB HBM3, gpu_memory: 85520809984, gpus_per_machine: 8,"
        " simulated: true}\n")
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("l")
        launch = app.screen
        status = lambda: " ".join(text_of(launch.query_one("#launch-status")).split())  # noqa: E731
        await wait_for(pilot, lambda: "cpu-a" in launch.profiles)
        launch.query_one("#launch-profile").value = "cpu-a"
        launch.set_focus(None)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "Give the training script" in status())
        launch.query_one("#launch-profile").value = "h100x8"
        await wait_for(pilot, lambda: "Give the training script" not in status())
        assert "Planned for 8× NVIDIA H100 80GB HBM3 (simulated)" in status()

        # a profile file by path; Check names a port, Launch starts with that very check
        launch.query_one("#launch-profile-file").value = "examples/profiles/cpu-ddp.yaml"
        launch.query_one("#launch-script").value = "examples/train_ddp.py"
        launch.query_one("#launch-python").value = sys.executable
        launch.set_focus(None)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "all checks passed" in status(), timeout=60)
        checked = launch._checked[1]
        assert f"port {checked.port}" in status()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: started)
        assert started[0][1] is checked

        # a profile saved by another program appears when the list is opened
        (folder / "imported.yaml").write_text("version: 1\nstrategy: single\n")
        launch.query_one("#launch-profile").focus()
        await wait_for(pilot, lambda: "imported" in launch.profiles)


async def test_a_profile_chosen_after_a_file_is_the_one_launched(make_app, stopped_launches):
    """A file typed earlier in 'or file' silently won over the profile chosen later: the status
    said one plan and Launch started another."""
    _, started = stopped_launches
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("l")
        launch = app.screen
        await wait_for(pilot, lambda: "cpu-a" in launch.profiles)
        launch.query_one("#launch-profile-file").value = "examples/profiles/cpu-ddp.yaml"
        launch.query_one("#launch-profile").value = "cpu-a"
        await pilot.pause()
        assert launch.query_one("#launch-profile-file").value == ""
        launch.query_one("#launch-script").value = "examples/train_ddp.py"
        launch.query_one("#launch-python").value = sys.executable
        launch.set_focus(None)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: started, timeout=60)
        assert [name for name, _ in started] == ["cpu-a"]


async def test_check_never_says_all_passed_for_a_plan_bigger_than_this_machine(
        make_app, stopped_launches):
    """A CPU plan needing more host memory than there is showed '✓ all checks passed' with the
    warning beside it: it is a question now, as GPU memory is, and Launch asks again."""
    folder, started = stopped_launches
    (folder / "huge.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\nnum_processes: 2\n"
                                      "estimate: {model: llama-3-70b, seq_len: 512}\n")
    app = make_app("2xH100-80GB")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.gpus)
        await pilot.press("l")
        launch = app.screen
        status = lambda: " ".join(text_of(launch.query_one("#launch-status")).split())  # noqa: E731
        await wait_for(pilot, lambda: "huge" in launch.profiles)
        launch.query_one("#launch-profile").value = "huge"
        launch.query_one("#launch-script").value = "examples/train_ddp.py"
        launch.query_one("#launch-python").value = sys.executable
        launch.set_focus(None)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "host memory needed" in status(), timeout=60)
        assert "all checks passed" not in status() and "Launch again" in status()
        assert not started
