"""Argument errors are one line everywhere, named by the command they were given to; what the
model or the box cannot give is said next to the estimate."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("args, words", [
    (["estimate", "llama-3-8b", "--seq-len", "abc"], ["trainwiz estimate", "--seq-len", "abc"]),
    (["estimate", "--params", "-5"], ["trainwiz estimate", "--params"]),
    (["estimate", "llama-3-8b", "--bogus"], ["trainwiz estimate", "--bogus"]),
    (["profiles", "show"], ["trainwiz profiles show", "NAME"]),
    (["runs", "bogus"], ["trainwiz runs", "argument ACTION", "'bogus'", "show"]),
])
def test_argument_errors_are_one_line(run_cli, args, words):
    out = run_cli(*args)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "usage:" not in out.stderr and all(w in lines[0] for w in words)


def test_estimate_says_what_the_model_and_the_box_cannot_give(run_cli):
    out = run_cli("estimate", "gpt2", "--seq-len", "8192", "--json")
    assert any("1,024 positions" in n for n in json.loads(out.stdout)["notes"])
    out = run_cli("estimate", "llama-3-8b", "--num-gpus", "4", "--simulate", "2xH100-80GB")
    assert out.returncode == 0 and "this box has 2 GPUs" in out.stdout


def test_profiles_list_names_the_mixed_precision(run_cli, isolated_env):
    from pathlib import Path

    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "plain.yaml").write_text("version: 1\nstrategy: ddp\n")
    out = run_cli("profiles", "list")
    assert "mixed precision: no" in out.stdout


def test_piped_estimate_keeps_each_suggestions_flags_on_one_line(run_cli):
    """`estimate ... | cat` at 80 columns split '--lora-targets all-linear' from
    '--activation-checkpointing': the flags a user copies must stay one line."""
    out = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", env={"COLUMNS": "80"})
    lines = out.stdout.splitlines()
    flags = [line.strip() for line in lines if line.strip().startswith("--")]
    assert "--method qlora --lora-rank 16 --lora-targets all-linear --activation-checkpointing" \
        in flags, flags
    assert not any(line.startswith("--") for line in lines), "a flag line was wrapped"


def test_profiles_list_keeps_a_path_whole_when_piped(run_cli, isolated_env):
    """Piped at 80 columns (and even at COLUMNS=140) the PATH column was cut into pieces."""
    from pathlib import Path

    folder = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "cpu-ddp.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\n"
                                         "num_processes: 2\n")
    out = run_cli("profiles", "list", env={"COLUMNS": "80"})
    assert "~/config/trainwiz/profiles/cpu-ddp.yaml" in out.stdout, out.stdout  # HOME: shown as ~
