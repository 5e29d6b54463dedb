"""The plan reaches the script: TRAINWIZ_* variables and {placeholders} in the script arguments."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT
from tests.launchers.helpers import TRAIN_DDP, write_profile
from trainwiz.errors import TrainwizError
from trainwiz.launchers.command import build_command
from trainwiz.launchers.planvars import PLAN_FIELDS, expand_args, plan_env, readme_table
from trainwiz.profiles import EstimateInputs, Profile


def _plan(**est) -> Profile:
    inputs = dict(model="llama-3.2-1b", batch_size=4, seq_len=1024, grad_accum=8,
                  optimizer="sgd", activation_checkpointing=True)
    inputs.update(est)
    return Profile(name="p", device="cpu", num_processes=2, mixed_precision="bf16",
                   estimate=EstimateInputs(**inputs))


def test_every_rank_gets_the_plan_in_its_environment():
    cmd = build_command(_plan(), "/src/train.py", [], run_dir="/runs/r1", run_id="r1", port=1)
    env = cmd.env
    assert env["TRAINWIZ_BATCH_SIZE"] == "4"
    assert env["TRAINWIZ_SEQ_LEN"] == "1024"
    assert env["TRAINWIZ_GRAD_ACCUM"] == "8"
    assert env["TRAINWIZ_PRECISION"] == "bf16"
    assert env["TRAINWIZ_BF16"] == "true" and env["TRAINWIZ_FP16"] == "false"
    assert env["TRAINWIZ_ACTIVATION_CHECKPOINTING"] == "true"
    assert env["TRAINWIZ_OPTIMIZER"] == "sgd"
    assert env["TRAINWIZ_MODEL"] == "llama-3.2-1b"
    assert env["TRAINWIZ_METHOD"] == "full"
    assert env["TRAINWIZ_RUN_DIR"] == "/runs/r1"
    assert not any(k.startswith("TRAINWIZ_LORA") for k in env)  # no LoRA in this plan


def test_a_profile_without_a_plan_passes_only_what_it_has_and_its_own_env_wins():
    p = Profile(name="p", device="cpu", env={"TRAINWIZ_PRECISION": "mine"})
    env = plan_env(p, "/r")
    assert "TRAINWIZ_BATCH_SIZE" not in env and env["TRAINWIZ_RUN_DIR"] == "/r"
    cmd = build_command(p, "/src/train.py", [], run_dir="/r", run_id="r", port=1)
    assert cmd.env["TRAINWIZ_PRECISION"] == "mine"


def test_placeholders_in_script_arguments_are_expanded():
    args = ["--per_device_train_batch_size", "{batch_size}", "--gradient_checkpointing",
            "{activation_checkpointing}", "--out={run_dir}/out", "--cfg", '{"a": {"b": 1}}',
            "{{batch_size}}"]
    cmd = build_command(_plan(), "/src/train.py", args, run_dir="/runs/r1", run_id="r1", port=1)
    assert cmd.argv[-8:] == ["--per_device_train_batch_size", "4", "--gradient_checkpointing",
                             "true", "--out=/runs/r1/out", "--cfg", '{"a": {"b": 1}}',
                             "{batch_size}"]


def test_an_unknown_placeholder_names_it_and_the_known_ones():
    with pytest.raises(TrainwizError) as err:
        expand_args(["--bs", "{batch}"], _plan())
    msg = str(err.value)
    assert "unknown placeholder {batch}" in msg
    assert "{batch_size}" in msg and "{seq_len}" in msg and "{run_dir}" in msg


def test_a_placeholder_the_profile_has_no_value_for_says_so():
    with pytest.raises(TrainwizError, match=r"\{seq_len\} has no value.*estimate"):
        expand_args(["{seq_len}"], Profile(name="p", device="cpu"))


def test_readme_documents_every_field():
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme_table() in readme
    assert len({f.env for f in PLAN_FIELDS}) == len(PLAN_FIELDS)


def test_print_commands_shows_the_expanded_command_and_a_bad_placeholder_is_exit_2(
        tmp_path, run_cli):
    prof = write_profile(tmp_path, "plan", estimate={"model": "gpt2", "batch_size": 3,
                                                     "seq_len": 128},
                         script=TRAIN_DDP, script_args=["--bs", "{batch_size}", "--len={seq_len}"])
    out = run_cli("launch", "--print-commands", "--profile", str(prof))
    assert out.returncode == 0, out.stderr
    assert "--bs 3 --len=128" in out.stdout
    assert "TRAINWIZ_BATCH_SIZE=3" in out.stdout
    out = run_cli("launch", "--print-commands", "--profile", str(prof), TRAIN_DDP, "--",
                  "--x", "{bogus}")
    assert out.returncode == 2
    assert "unknown placeholder {bogus}" in out.stderr and "{batch_size}" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_lora_plan_passes_its_lora_settings():
    from types import SimpleNamespace

    est = SimpleNamespace(model="llama-3-8b", batch_size=1, seq_len=512, grad_accum=1,
                          optimizer="adamw", activation_checkpointing=False, method="lora",
                          lora=SimpleNamespace(rank=8, alpha=None, dropout=0.05,
                                               targets="q_proj,v_proj"))
    env = plan_env(Profile(name="l", device="cpu", estimate=est), "/r")
    assert env["TRAINWIZ_METHOD"] == "lora"
    assert (env["TRAINWIZ_LORA_RANK"], env["TRAINWIZ_LORA_ALPHA"]) == ("8", "16")  # 2 x rank
    assert (env["TRAINWIZ_LORA_DROPOUT"], env["TRAINWIZ_LORA_TARGETS"]) == ("0.05", "q_proj,v_proj")
    assert expand_args(["--lora_r", "{lora_rank}"], Profile(name="l", device="cpu",
                                                            estimate=est)) == ["--lora_r", "8"]
