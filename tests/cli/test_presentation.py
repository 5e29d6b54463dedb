"""What a user reads, the same everywhere: one way to print a size (an unknown reads "unknown"),
one description of a memory verdict (readable without colour), one summary of a failed run, and
`trainwiz runs` as a table that stays one line a run at 80 columns."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from trainwiz.estimator.types import VERDICTS, verdict_of, worst_verdict
from trainwiz.launchers.failures import failure_summary
from trainwiz.launchers.records import Failure, RankStatus, RunStatus
from trainwiz.launchers.rundir import read_status, save_status
from trainwiz.units import format_bytes

ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7])m")  # a foreground colour, not just bold
LONG_PROFILE = "llama-3-8b-fsdp-full-shard-bf16-on-the-big-cluster-partition"  # 60 characters
OOM = Failure(rank=1, exit_code=1, oom=True,
              message="torch.OutOfMemoryError: CUDA out of memory.\n  Tried to allocate 1.96 GiB "
                      "[red]not markup[/red]")


def forge(state_home: str | Path, run_id: str, **fields) -> Path:
    run_dir = Path(state_home) / "trainwiz" / "runs" / run_id
    run_dir.mkdir(parents=True)
    fields = {"state": "succeeded", "script": "/work/examples/train.py", **fields}
    save_status(run_dir, RunStatus(
        id=run_id, started_at="2026-01-01T12:00:00+00:00", run_dir=str(run_dir),
        ranks=[RankStatus(rank=0), RankStatus(rank=1)], **fields))
    return run_dir


# ---- sizes ---------------------------------------------------------------------------------

def test_one_size_format_and_an_unknown_is_never_zero():
    assert format_bytes(None) == "unknown"
    assert format_bytes(0) == "0 B"
    assert format_bytes(512 << 20) == "512.0 MiB"
    assert format_bytes(int(79.6 * 2**30)) == "79.6 GiB"
    assert format_bytes(80 << 30, 0) == "80 GiB"
    assert format_bytes(512 << 20, 2, "GiB") == "0.50 GiB"  # a column in one unit
    assert format_bytes(12 << 30, unit="GiB", bare=True) == "12.0"  # "12.0/80.0 GiB"
    assert format_bytes(None, unit="GiB", bare=True) == "unknown"


def test_an_unknown_gpu_size_reads_unknown_on_the_dashboard_card():
    from types import SimpleNamespace

    from trainwiz.tui.widgets.gpu_card import render_gpu

    gpu = SimpleNamespace(index=0, name="NVIDIA H100", mig=False, compute_capability=None,
                          memory_used=None, memory_total=80 << 30, utilization=None,
                          temperature=None, power_draw=None, power_limit=None, processes=[],
                          error=None)
    assert "unknown/80.0 GiB" in render_gpu(gpu, 100).plain


# ---- verdicts ------------------------------------------------------------------------------

def test_each_verdict_has_its_own_words_and_mark_so_colour_is_never_needed():
    assert len({v.banner for v in VERDICTS.values()}) == len(VERDICTS)
    assert len({v.mark for v in VERDICTS.values()}) == len(VERDICTS)
    assert worst_verdict(["fits", "tight", "fits"]) == "tight"
    assert worst_verdict(["fits", "does not fit", "unknown"]) == "does not fit"
    assert worst_verdict([]) == "unknown"
    assert verdict_of("tight").fits is True and verdict_of("does not fit").fits is False
    assert verdict_of("something newer").banner == "SOMETHING NEWER"


@pytest.mark.parametrize(("model", "word"), [("gpt2", "fits"), ("llama-3-70b", "does not fit")])
def test_estimate_verdict_reads_without_colour(run_cli, model, word):
    # a terminal (FORCE_COLOR) that asked for no colour: bold at most, and the verdict in words
    res = run_cli("estimate", model, "--simulate", "1xH100-80GB",
                  env={"NO_COLOR": "1", "FORCE_COLOR": "1", "COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    assert not COLOUR.search(res.stdout)
    plain = ANSI.sub("", res.stdout)
    assert re.search(rf"^{word}: needs [0-9.]+ [GT]iB of 79.6 GiB per GPU", plain, re.MULTILINE)


# ---- a failed run --------------------------------------------------------------------------

def test_failure_summary_says_who_what_and_how_it_ended():
    assert failure_summary(OOM) == ("rank 1: torch.OutOfMemoryError: CUDA out of memory. Tried to "
                                    "allocate 1.96 GiB [red]not markup[/red] "
                                    "(exit code 1, out of memory)")
    node = Failure(rank=3, exit_code=-9, message="", node="gpu-b")
    assert failure_summary(node) == "rank 3 on gpu-b (SIGKILL)"
    killed = Failure(rank=None, exit_code=-9, message="the launcher was killed by SIGKILL")
    assert failure_summary(killed) == "the launcher was killed by SIGKILL"
    gave_up = Failure(rank=None, exit_code=1, message="torchrun: error: rendezvous timed out")
    assert failure_summary(gave_up) == ("launcher: torchrun: error: rendezvous timed out "
                                        "(exit code 1)")
    lost = Failure(rank=None, exit_code=None,
                   message="supervisor killed; run ended by its watchdog")
    assert failure_summary(lost) == "launcher: supervisor killed; run ended by its watchdog"


def test_a_failed_run_reads_the_same_in_runs_runs_show_and_the_live_view(run_cli, isolated_env):
    from trainwiz.cli.live import follow_plain

    run_dir = forge(isolated_env["XDG_STATE_HOME"], "20260101-120000-fail", state="failed",
                    profile="p", failure=OOM)
    summary = failure_summary(read_status(run_dir).failure)
    listed = run_cli("runs", env={"COLUMNS": "300"})
    shown = run_cli("runs", "show", "last")
    out = io.StringIO()
    assert follow_plain(run_dir, out=out, interval=0) == 1
    assert summary in listed.stdout
    assert f"failure: {summary}" in shown.stdout
    assert f"FAILED: {summary}" in out.getvalue()


# ---- runs as a table -----------------------------------------------------------------------

def test_runs_at_80_columns_cuts_long_names_with_an_ellipsis_and_keeps_every_column(
        run_cli, isolated_env):
    state = isolated_env["XDG_STATE_HOME"]
    forge(state, "20260101-120000-long", profile=LONG_PROFILE)
    forge(state, "20260101-130000-fail", state="failed", profile="[bold]p[/bold]",
          script="/work/a_training_script_with_a_long_name.py", failure=OOM)
    res = run_cli("runs", env={"COLUMNS": "80"})  # piped, as in a script: no ANSI codes
    assert res.returncode == 0, res.stderr
    assert not ANSI.search(res.stdout)
    lines = res.stdout.splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), res.stdout
    assert all(line == line.rstrip() for line in lines)  # no padding after the text
    assert lines[0].split() == ["ID", "(UTC", "start)", "STATE", "PROFILE", "SCRIPT", "RANKS",
                                "FAILURE/PROGRESS"]
    fail, long = lines[1], lines[2]  # newest first
    assert long.startswith("20260101-120000-long succeeded") and "llama-3-8…" in long
    assert LONG_PROFILE not in res.stdout and long.split()[-1] == "2"  # the ranks still there
    assert fail.startswith("20260101-130000-fail failed OOM [bold]p[/…")  # text, not markup
    assert "a_trainin…" in fail and re.search(r" 2 rank 1: torch\.\S*…$", fail)


def test_runs_on_a_wide_terminal_shows_the_whole_failure(run_cli, isolated_env):
    forge(isolated_env["XDG_STATE_HOME"], "20260101-120000-long", profile=LONG_PROFILE)
    res = run_cli("runs", env={"COLUMNS": "200"})
    assert LONG_PROFILE[:23] + "…" in res.stdout  # a name is kept to its column at any width
    assert "train.py" in res.stdout and not ANSI.search(res.stdout)
