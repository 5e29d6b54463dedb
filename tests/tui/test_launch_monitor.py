"""Launch a real 2-rank CPU run from the app, watch it in the monitor, stop it.

Real `torch.distributed.run` under the launcher's supervisor; GPUs are simulated, so the
monitor's memory is the box baseline plus the ranks' real RSS (it moves as they work).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tui.conftest import text_of, wait_for

pytestmark = pytest.mark.slow


async def test_launch_watch_and_stop_a_cpu_run(make_app, isolated_env, monkeypatch, tmp_path):
    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "examples" / "profiles" / "cpu-ddp.yaml", folder / "cpu-ddp.yaml")
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await wait_for(pilot, lambda: app.current_mode == "launch")
        launch = app.screen
        select = launch.query_one("#launch-profile")
        await wait_for(pilot, lambda: "cpu-ddp" in launch.profiles)
        select.value = "cpu-ddp"
        launch.query_one("#launch-script").value = str(REPO_ROOT / "examples" / "train_ddp.py")
        launch.query_one("#launch-args").value = "--steps 400 --sleep 0.05"
        launch.query_one("#launch-python").value = sys.executable
        launch.set_focus(None)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen", timeout=60)
        monitor = app.screen
        await wait_for(pilot, lambda: monitor.status is not None
                       and monitor.status.state == "running"
                       and len(monitor.status.ranks) == 2
                       and all(r.pid for r in monitor.status.ranks), timeout=60)
        table = monitor.query_one("#rank-table")
        await wait_for(pilot, lambda: table.row_count == 2)
        assert [str(table.get_row_at(i)[3]) for i in range(2)] == ["running", "running"]

        # a CPU run on a simulated box: the ranks' real host memory, never the box's GPUs
        assert "CPU run" in text_of(monitor.query_one("#run-state"))
        assert "SIMULATED" not in text_of(monitor.query_one("#run-state"))
        columns = [str(c.label) for c in table.ordered_columns]
        assert "host memory (RSS)" in columns and not any("GPU" in c for c in columns)
        memory = columns.index("host memory (RSS)")
        await wait_for(pilot, lambda: all("MiB" in str(table.get_row_at(i)[memory])
                                          for i in range(2)), timeout=60)
        assert all(str(table.get_row_at(i)[columns.index("est. peak")]) == "no GPU"
                   for i in range(2))
        await wait_for(pilot, lambda: any("step" in line for line in monitor._log_lines),
                       timeout=60)
        # progress from the example's $TRAINWIZ_RUN_DIR/metrics.jsonl: step of total, time left
        progress = lambda: text_of(monitor.query_one("#run-progress"))  # noqa: E731
        await wait_for(pilot, lambda: "/400" in progress() and "left" in progress(), timeout=30)

        await pilot.press("s")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        await pilot.press("y")
        await wait_for(pilot, lambda: monitor.status.state == "stopped", timeout=60)
        assert "STOPPED" in text_of(monitor.query_one("#run-state"))
        # a stopped run: no stale memory readings, and no "Stop run" / "keeps running" keys
        await wait_for(pilot, lambda: all(str(table.get_row_at(i)[memory]).startswith(
            ("peak", "ended")) for i in range(2)))
        footer = {b.binding.description for b in monitor.active_bindings.values()
                  if b.binding.show and b.enabled}
        assert "Back" in footer and "Stop run" not in footer
        assert not any("keeps running" in d for d in footer)

        # leaving the monitor never stops a run; the run list shows this one
        await pilot.press("escape")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.current_mode == "runs")
        runs_table = app.screen.query_one("#runs-table")
        await wait_for(pilot, lambda: runs_table.row_count == 1)
        assert str(runs_table.get_row_at(0)[1]) == "stopped"


async def test_a_real_hf_trainer_run_with_placeholders_shows_its_progress(isolated_env, run_cli,
                                                                         tmp_path):
    """transformers.Trainer on 2 CPU ranks (gloo), launched by trainwiz from a profile whose
    script arguments are placeholders: the command shows the values, every rank sees the plan,
    and the monitor and `runs --json` show step, loss and time left read from its own output."""
    import json

    import yaml

    from trainwiz.tui.monitor_app import MonitorApp

    data = yaml.safe_load((REPO_ROOT / "examples" / "profiles" / "cpu-hf-trainer.yaml").read_text())
    data["python"] = sys.executable
    data["script"] = str(REPO_ROOT / data["script"])
    data["estimate"]["model"] = str(REPO_ROOT / data["estimate"]["model"])
    data["estimate"]["batch_size"] = 3
    data["estimate"]["steps"] = 30  # -> --max_steps {steps}
    data["script_args"] += ["--logging_steps", "3", "--step_sleep", "0.2"]
    prof = tmp_path / "hf.yaml"
    prof.write_text(yaml.safe_dump(data))

    shown = run_cli("launch", "--print-commands", "--profile", str(prof))
    assert shown.returncode == 0, shown.stderr
    assert "--per_device_train_batch_size 3 " in shown.stdout
    assert "--gradient_checkpointing false" in shown.stdout and "--max_steps 30 " in shown.stdout
    assert "{" not in shown.stdout

    out = run_cli("launch", "--detach", "--profile", str(prof))
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.split("(", 1)[1].split(")", 1)[0])

    app = MonitorApp(run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.monitor.status is not None, timeout=30)
        monitor = app.monitor
        line = lambda: text_of(monitor.query_one("#run-progress"))  # noqa: E731
        # while it runs: step of total, loss and time left, from the Trainer's own output
        await wait_for(pilot, lambda: "/30" in line() and "loss" in line() and "left" in line()
                       and not monitor.status.finished, timeout=120)
        running = json.loads(run_cli("runs", "--json").stdout)[0]
        progress = running["progress"]
        assert progress["total"] == 30 and 0 < progress["step"] <= 30 and progress["loss"] > 0
        # time left while it runs (on a loaded machine it may have finished meanwhile)
        assert progress["seconds_left"] is not None or running["state"] != "running"
        await pilot.press("v")  # the loss curve
        await wait_for(pilot, lambda: "loss by step" in text_of(monitor.query_one("#log-title")))
        await wait_for(pilot, lambda: monitor.status.finished, timeout=120)
        assert monitor.status.state == "succeeded", monitor.status.failure
        await wait_for(pilot, lambda: "step 30/30" in line(), timeout=10)

    done = json.loads(run_cli("runs", "--json").stdout)[0]
    log0 = run_cli("logs", done["id"], "--rank", "0").stdout
    last = [ln for ln in log0.splitlines() if ln.startswith("{'loss'")][-1]
    assert done["progress"]["step"] == 30 and done["progress"]["total"] == 30
    assert done["progress"]["loss"] == pytest.approx(float(last.split("'loss': ")[1]
                                                           .split(",")[0].strip("'")))
    assert done["memory"]["comparison"] is False and "CPU run" in done["memory"]["reason"]
    for rank in (0, 1):  # every rank saw the plan in its environment
        log = run_cli("logs", done["id"], "--rank", str(rank)).stdout
        assert (f"rank {rank} sees the plan:" in log and "TRAINWIZ_BATCH_SIZE=3" in log
                and "TRAINWIZ_SEQ_LEN=64" in log)
