"""The plain wizard, driven through a pseudo-terminal as a user would type."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

pexpect = pytest.importorskip("pexpect")

ARROWS = r"[^\n]*\(Use (shortcuts or )?arrow keys"  # a select's first drawing, not its answer


def spawn(isolated_env, cwd: Path, *args: str):
    env = dict(isolated_env, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(sys.executable, ["-m", "trainwiz", "config", *args], env=env,
                          cwd=str(cwd), encoding="utf-8", timeout=30, dimensions=(50, 200))
    return child


def answer(child, question: str, keys: str) -> None:
    child.expect(question)
    child.send(keys)


def test_plain_wizard_saves_the_profile_it_was_told(isolated_env, tmp_path):
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "2xH100-80GB")
    child.expect("Found 2 GPU")
    answer(child, "Model", "llama-3-8b\r")
    answer(child, "GPUs to use", "\r")  # both, as proposed
    answer(child, "Mixed precision" + ARROWS, "\r")  # bf16: H100s support it
    answer(child, "Micro-batch size per GPU", "\x152\r")
    answer(child, "Sequence length", "\x151024\r")
    answer(child, "Training loop" + ARROWS, "\r")  # custom, the default: not written
    answer(child, "Fine-tuning method" + ARROWS, "\r")  # full
    answer(child, "Strategy" + ARROWS, "f\r")
    child.expect("Memory per GPU: [0-9.]+ GiB of 79.6 GiB")
    answer(child, "FSDP sharding" + ARROWS, "s\r")
    while child.expect([r"does not fit\. Change" + ARROWS, "several machines"]) == 0:
        child.send("k\r")
    child.send("n")
    answer(child, "Profile name", "\x15big-fsdp\r")
    child.expect("Saved profile")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "big-fsdp.yaml"
    data = yaml.safe_load(saved.read_text())
    assert data == {"version": 1, "strategy": "fsdp",
                    "fsdp": {"sharding_strategy": "SHARD_GRAD_OP"},
                    "mixed_precision": "bf16", "num_processes": 2,
                    "estimate": {"model": "llama-3-8b", "batch_size": 2, "seq_len": 1024},
                    "hardware": {"gpu": "NVIDIA H100 80GB HBM3", "gpu_memory": 85520809984,
                                 "gpus_per_machine": 2, "simulated": True}}


def test_plain_wizard_plans_qlora_and_names_the_modules_a_target_must_match(isolated_env,
                                                                             tmp_path):
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "1x4090")
    answer(child, "Model", "llama-3-8b\r")
    answer(child, "Mixed precision" + ARROWS, "n\r")  # fp32: QLoRA will say it needs bf16
    answer(child, "Micro-batch size per GPU", "\r")
    answer(child, "Sequence length", "\r")
    answer(child, "Training loop" + ARROWS, "\r")
    answer(child, "Fine-tuning method" + ARROWS, "q\r")
    answer(child, "LoRA rank", "\x158\r")
    answer(child, "LoRA target modules", "\x15q_proj,query\r")
    child.expect("'query' matches no linear layer of this llama model; its linear layers are "
                 "q_proj, k_proj")
    child.send("\x15q_proj,v_proj\r")
    child.expect("mixed precision set to bf16")
    answer(child, "Strategy" + ARROWS, "\r")
    child.expect("Memory per GPU: [0-9.]+ GiB of 24.0 GiB")
    answer(child, "Profile name", "\x15qlora-4090\r")
    child.expect("Saved profile")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "qlora-4090.yaml"
    data = yaml.safe_load(saved.read_text())
    assert data["mixed_precision"] == "bf16"
    assert data["estimate"] == {"model": "llama-3-8b", "activation_checkpointing": True,
                                "method": "qlora",
                                "lora": {"rank": 8, "targets": "q_proj,v_proj"}}


def test_wizard_project_store_asks_before_replacing(isolated_env, tmp_path):
    project = tmp_path / "repo"
    (project / ".git").mkdir(parents=True)
    folder = project / ".trainwiz" / "profiles"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("# keep me\nstrategy: single\n")
    child = spawn(isolated_env, project, "--plain", "--simulate", "1x4090", "--project",
                  "--name", "mine")
    answer(child, "Model", "\r")  # no model: no estimate questions
    answer(child, "Mixed precision" + ARROWS, "f\r")
    answer(child, "Strategy" + ARROWS, "\r")
    answer(child, "Replace profile 'mine'", "n")
    answer(child, "Profile name", "\x15other\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (folder / "mine.yaml").read_text() == "# keep me\nstrategy: single\n"
    assert yaml.safe_load((folder / "other.yaml").read_text()) == {
        "version": 1, "strategy": "single", "mixed_precision": "fp16",
        "hardware": {"gpu": "NVIDIA GeForce RTX 4090", "gpu_memory": 25757220864,
                     "simulated": True}}


def test_ctrl_c_saves_nothing(isolated_env, tmp_path):
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "2xH100-80GB")
    answer(child, "Model", "\x03")
    child.expect("nothing saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert not (Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz").exists()


def test_planned_on_a_simulated_box_exports_anywhere_and_keeps_the_model_path(
        isolated_env, tmp_path, run_cli):
    """The GPU count planned for 8 simulated H100s is saved, so export needs no --simulate; a
    relative model folder is stored absolute; the name prompt starts empty (typing is the name)."""
    model = tmp_path / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text(
        '{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 100,'
        ' "n_positions": 128}')
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "8xH100-80GB")
    answer(child, "Model", "models/tiny\r")
    answer(child, "GPUs to use", "\r")
    answer(child, "Mixed precision" + ARROWS, "\r")
    answer(child, "Micro-batch size per GPU", "\r")
    answer(child, "Sequence length", "\r")
    answer(child, "Training loop" + ARROWS, "\r")
    answer(child, "Fine-tuning method" + ARROWS, "\r")
    answer(child, "Strategy" + ARROWS, "d\r")
    answer(child, "several machines", "n")
    answer(child, "Profile name", "eight\r")
    child.expect("Saved profile eight")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "eight.yaml"
    data = yaml.safe_load(saved.read_text())
    assert data["num_processes"] == 8 and data["estimate"]["model"] == str(model)
    exported = run_cli("profiles", "export", "eight", "--format", "accelerate", "-o",
                       str(tmp_path / "acc.yaml"))
    assert exported.returncode == 0, exported.stderr
    assert yaml.safe_load((tmp_path / "acc.yaml").read_text())["num_processes"] == 8


def test_plain_wizard_asks_the_loop_and_offers_bf16_pure(isolated_env, tmp_path):
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "1xH100-80GB")
    answer(child, "Model", "llama-3.2-1b\r")
    answer(child, "Mixed precision" + ARROWS, "p\r")
    answer(child, "Micro-batch size per GPU", "\x154\r")
    answer(child, "Sequence length", "\x152048\r")
    answer(child, "Training loop" + ARROWS, "t\r")
    answer(child, "Fine-tuning method" + ARROWS, "\r")
    answer(child, "Strategy" + ARROWS, "\r")
    child.expect("Memory per GPU: [0-9.]+ GiB of 79.6 GiB")
    answer(child, "Profile name", "\x15pure\r")
    child.expect("Saved profile")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "pure.yaml"
    assert yaml.safe_load(saved.read_text()) == {
        "version": 1, "strategy": "single", "mixed_precision": "bf16-pure",
        "estimate": {"model": "llama-3.2-1b", "batch_size": 4, "loop": "trainer"},
        "hardware": {"gpu": "NVIDIA H100 80GB HBM3", "gpu_memory": 85520809984,
                     "simulated": True}}


def test_a_number_out_of_range_is_refused_with_the_range_never_changed(isolated_env, tmp_path):
    """9999 CPU ranks were saved as 1024 without a word: each number prompt refuses what a
    profile may not hold, naming the range, and takes the answer typed next; the estimate of
    CPU ranks is their host memory."""
    child = spawn(isolated_env, tmp_path, "--plain")  # no GPU here: CPU ranks
    answer(child, "Model", "gpt2\r")
    answer(child, "How many CPU ranks", "\x159999\r")
    child.expect("a whole number from 1 to 1,024")
    child.send("\x154\r")
    answer(child, "Mixed precision" + ARROWS, "\r")
    # CPU ranks, not GPUs: the questions say what the plan runs on
    answer(child, "Micro-batch size per CPU rank", "\x15100000000000000000000\r")
    child.expect("a whole number from 1 to 65,536")
    child.send("\x152\r")
    answer(child, "Sequence length", "\r")
    answer(child, "Training loop" + ARROWS, "\r")
    answer(child, "Fine-tuning method" + ARROWS, "\r")
    child.expect("Strategy" + ARROWS)
    child.expect("shard parameters, gradients and optimizer state across CPU ranks")
    assert "GPU" not in child.before + child.after
    child.send("\r")
    # a CPU plan is its ranks' host memory, not 'Memory per GPU … on 4 GPUs'
    child.expect(r"Host memory: 4 CPU ranks × [0-9.]+ [MG]iB = [0-9.]+ [MG]iB of [0-9.]+ GiB RAM")
    answer(child, "several machines", "n")
    answer(child, "Profile name", "\x15cpu4\r")
    child.expect("Saved profile")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles" / "cpu4.yaml"
    data = yaml.safe_load(saved.read_text())
    assert data["num_processes"] == 4 and data["estimate"]["batch_size"] == 2


def test_the_change_menu_says_what_each_change_changes(isolated_env, tmp_path):
    """'5) change of method → 14.1 GiB' hid which method: the line names it."""
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "1x4090")
    answer(child, "Model", "llama-3-8b\r")
    answer(child, "Mixed precision" + ARROWS, "\r")
    answer(child, "Micro-batch size per GPU", "\r")
    answer(child, "Sequence length", "\r")
    answer(child, "Training loop" + ARROWS, "\r")
    answer(child, "Fine-tuning method" + ARROWS, "\r")
    answer(child, "Strategy" + ARROWS, "\r")
    child.expect(r"does not fit\. Change" + ARROWS)
    child.expect(r"method → QLoRA r16 all-linear: [0-9.]+ GiB per GPU")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()


def test_the_change_menu_lists_the_changes_in_the_order_estimate_prints_them(
        isolated_env, tmp_path, run_cli):
    """llama-3-8b on one H100: the menu put QLoRA before LoRA, `trainwiz estimate` LoRA
    before QLoRA (the menu kept the memory ranking, the CLI the timed one)."""
    text = run_cli("estimate", "llama-3-8b", "--simulate", "1xH100-80GB").stdout
    cli = [line.split(". ", 1)[1].split(" → ")[0].split(" (")[0]
           for line in text.splitlines() if re.match(r"  \d\. ", line)]
    assert len(cli) >= 3, text
    child = spawn(isolated_env, tmp_path, "--plain", "--simulate", "1xH100-80GB")
    answer(child, "Model", "llama-3-8b\r")
    answer(child, "Mixed precision" + ARROWS, "\r")
    answer(child, "Micro-batch size per GPU", "\r")
    answer(child, "Sequence length", "\r")
    answer(child, "Training loop" + ARROWS, "\r")
    answer(child, "Fine-tuning method" + ARROWS, "\r")
    answer(child, "Strategy" + ARROWS, "\r")
    child.expect(r"does not fit\. Change" + ARROWS)
    child.expect("keep these settings")
    menu = child.before + child.after
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    changes = (r"CPU offload", r"\bLoRA r16", r"QLoRA r16")  # \b: not the QLoRA line
    shown = [re.search(words, menu) for words in changes]
    assert all(shown), menu
    shown = [m.start() for m in shown]
    want = [next(i for i, c in enumerate(cli) if re.search(words, c)) for words in changes]
    assert sorted(range(3), key=lambda i: shown[i]) == sorted(range(3), key=lambda i: want[i])
