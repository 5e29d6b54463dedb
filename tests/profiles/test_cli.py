"""`trainwiz profiles ...` and `trainwiz config` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.profiles.test_accelerate import DDP_TALK, FSDP_TALK


def _user_dir(env) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"


def test_import_list_show_export(run_cli, isolated_env, tmp_path):
    (tmp_path / "fsdp_config.yaml").write_text(FSDP_TALK)
    r = run_cli("profiles", "import", "fsdp_config.yaml", "--name", "fsdp-8gpu")
    assert r.returncode == 0, r.stderr
    saved = _user_dir(isolated_env) / "fsdp-8gpu.yaml"
    assert f"as profile 'fsdp-8gpu': {saved}" in r.stdout
    assert yaml.safe_load(saved.read_text())["strategy"] == "fsdp"

    r = run_cli("profiles", "list")
    assert r.returncode == 0 and "fsdp-8gpu" in r.stdout and "fsdp1 FULL_SHARD" in r.stdout

    r = run_cli("profiles", "list", "--json")
    (entry,) = json.loads(r.stdout)
    assert entry["name"] == "fsdp-8gpu" and entry["scope"] == "user" and not entry["damaged"]
    assert entry["profile"]["num_processes"] == 8

    r = run_cli("profiles", "show", "fsdp-8gpu")
    assert r.returncode == 0 and str(saved) in r.stdout and "use_orig_params: false" in r.stdout

    r = run_cli("profiles", "export", "fsdp-8gpu", "--format", "accelerate")
    exported = yaml.safe_load(r.stdout)
    assert exported["distributed_type"] == "FSDP"
    assert exported["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"

    out = tmp_path / "acc.yaml"
    assert run_cli("profiles", "export", "fsdp-8gpu", "--format", "accelerate",
                   "-o", str(out)).returncode == 0
    before = out.read_bytes()
    r = run_cli("profiles", "export", "fsdp-8gpu", "--format", "trainwiz", "-o", str(out))
    assert r.returncode == 2 and "--force" in r.stderr and out.read_bytes() == before
    r = run_cli("profiles", "export", "fsdp-8gpu", "--format", "trainwiz", "-o", str(out),
                "--force")
    assert r.returncode == 0 and out.read_text() == saved.read_text()
    # a mistyped folder is refused, not made
    r = run_cli("profiles", "export", "fsdp-8gpu", "-o", str(tmp_path / "typo" / "x.yaml"))
    assert r.returncode == 2 and "no folder" in r.stderr and not (tmp_path / "typo").exists()


def test_import_refuses_to_overwrite_without_force(run_cli, isolated_env, tmp_path):
    (tmp_path / "ddp.yaml").write_text(DDP_TALK)
    assert run_cli("profiles", "import", "ddp.yaml", "--name", "p").returncode == 0
    saved = _user_dir(isolated_env) / "p.yaml"
    saved.write_text(saved.read_text() + "# my comment\n")
    before = saved.read_bytes()
    r = run_cli("profiles", "import", "ddp.yaml", "--name", "p")
    assert r.returncode == 2 and "already exists" in r.stderr and saved.read_bytes() == before
    assert run_cli("profiles", "import", "ddp.yaml", "--name", "p", "--force").returncode == 0
    assert b"# my comment" not in saved.read_bytes()


def test_bad_file_exit_2_with_file_line_key(run_cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("strategy: fsdp\nfsdp:\n  sharding_stratgy: FULL_SHARD\n")
    r = run_cli("profiles", "import", "bad.yaml", "--name", "bad")
    assert r.returncode == 2
    assert r.stderr.startswith(f"trainwiz: {Path('bad.yaml')}:3: unknown key "
                               "'fsdp.sharding_stratgy' (did you mean 'sharding_strategy'?)")
    (tmp_path / "ds.yaml").write_text("distributed_type: DEEPSPEED\ndeepspeed_config: {}\n")
    r = run_cli("profiles", "import", "ds.yaml", "--name", "ds")
    assert r.returncode == 2 and "ds.yaml:1:" in r.stderr and "not supported yet" in r.stderr


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "{}\n"])
def test_importing_a_file_with_no_settings_is_refused(run_cli, isolated_env, tmp_path, text):
    """It used to import as a profile of defaults the user never chose (exit 0)."""
    (tmp_path / "empty.yaml").write_text(text)
    r = run_cli("profiles", "import", "empty.yaml", "--name", "e")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"trainwiz: {Path('empty.yaml')}: no settings in it; expected an "
                                "accelerate config or a trainwiz profile (see `trainwiz profiles "
                                "import --help`)")
    assert not (_user_dir(isolated_env) / "e.yaml").exists()


def test_import_reports_every_problem_of_an_accelerate_config(run_cli, isolated_env, tmp_path):
    """A config with a bad FSDP version stopped the FSDP checks there, and one with a bad value
    never had its combinations checked: each fix showed the next problem. All are named at once,
    each with its line, and no profile is written."""
    (tmp_path / "acc.yaml").write_text(
        "compute_environment: LOCAL_MACHINE\n"  # 1
        "distributed_type: FSDP\n"  # 2
        "fsdp_config:\n"  # 3
        "  fsdp_version: 3\n"  # 4
        "  fsdp_sharding_strategy: FULL_SHAD\n"  # 5
        "  fsdp_ofload_params: false\n"  # 6
        "gpu_ids: 0,1\n"  # 7
        "mixed_precision: bf17\n"  # 8
        "num_machines: 1\n"  # 9
        "num_processes: 3\n")  # 10
    r = run_cli("profiles", "import", "acc.yaml", "--name", "x")
    assert r.returncode == 2, r.stderr
    src = Path("acc.yaml")
    assert f"trainwiz: {src}: 5 problems" in r.stderr
    for expected in (
            f"{src}:4: key 'fsdp_config.fsdp_version': 3 is not allowed; allowed: 1, 2",
            f"{src}:5: key 'fsdp_config.fsdp_sharding_strategy': 'FULL_SHAD' is not allowed "
            "(did you mean 'FULL_SHARD'?); allowed: FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, "
            "HYBRID_SHARD (or 1 to 4)",
            f"{src}:6: unknown key 'fsdp_config.fsdp_ofload_params' (did you mean "
            "'fsdp_offload_params'?)",
            f"{src}:8: key 'mixed_precision': 'bf17' is not allowed (did you mean 'bf16'?); "
            "allowed: no, fp16, bf16, fp8",
            f"{src}:10: key 'num_processes': 3 processes on 2 GPU(s) [0, 1]"):
        assert expected in r.stderr
    assert not _user_dir(isolated_env).exists() or not any(_user_dir(isolated_env).iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.yaml", "home"]

    # an unknown distributed_type leaves the strategy open; the other keys are still checked
    (tmp_path / "acc.yaml").write_text("distributed_type: MULTI_GPUS\nmixed_precision: bf17\n"
                                       "num_proceses: 2\n")
    r = run_cli("profiles", "import", "acc.yaml", "--name", "x")
    assert r.returncode == 2 and f"trainwiz: {src}: 3 problems" in r.stderr
    assert f"{src}:1: key 'distributed_type': 'MULTI_GPUS' is not allowed (did you mean " \
           "'MULTI_GPU'?)" in r.stderr
    assert f"{src}:2: key 'mixed_precision'" in r.stderr
    assert f"{src}:3: unknown key 'num_proceses' (did you mean 'num_processes'?)" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.yaml", "home"]


def test_import_accelerate_default(run_cli, tmp_path):
    hf = tmp_path / "hf"
    r = run_cli("profiles", "import", "--from-accelerate-default", "--name", "acc",
                env={"HF_HOME": str(hf)})
    assert r.returncode == 2 and "default_config.yaml" in r.stderr
    (hf / "accelerate").mkdir(parents=True)
    (hf / "accelerate" / "default_config.yaml").write_text(DDP_TALK)
    r = run_cli("profiles", "import", "--from-accelerate-default", "--name", "acc",
                env={"HF_HOME": str(hf)})
    assert r.returncode == 0, r.stderr
    assert "num_processes: 8" in run_cli("profiles", "show", "acc").stdout


def test_damaged_profile_listed_and_untouched(run_cli, isolated_env):
    folder = _user_dir(isolated_env)
    folder.mkdir(parents=True)
    bad = folder / "broken.yaml"
    bad.write_bytes(b"strategy: fsdp\nmixed_precison: bf16\n")
    r = run_cli("profiles", "list")
    assert r.returncode == 0
    assert "broken" in r.stdout and "DAMAGED" in r.stdout and "mixed_precison" in r.stdout
    r = run_cli("profiles", "show", "broken")
    assert r.returncode == 2 and "did you mean 'mixed_precision'" in r.stderr
    r = run_cli("profiles", "cp", "broken", "copy")
    assert r.returncode == 2 and not (folder / "copy.yaml").exists()
    assert bad.read_bytes() == b"strategy: fsdp\nmixed_precison: bf16\n"


def test_cp_and_rm(run_cli, isolated_env, tmp_path):
    (tmp_path / "ddp.yaml").write_text(DDP_TALK)
    run_cli("profiles", "import", "ddp.yaml", "--name", "a")
    assert run_cli("profiles", "cp", "a", "b").returncode == 0
    b = _user_dir(isolated_env) / "b.yaml"
    assert b.read_text() == (_user_dir(isolated_env) / "a.yaml").read_text()
    r = run_cli("profiles", "rm", "b")  # no terminal, no --yes: nothing deleted
    assert r.returncode == 2 and "--yes" in r.stderr and b.exists()
    assert run_cli("profiles", "rm", "b", "--yes").returncode == 0 and not b.exists()
    r = run_cli("profiles", "rm", "b", "--yes")
    assert r.returncode == 2 and "no profile named 'b'" in r.stderr


def test_project_profile_wins_from_a_subfolder(run_cli, isolated_env, tmp_path):
    project = tmp_path / "repo"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    (tmp_path / "ddp.yaml").write_text(DDP_TALK)
    run_cli("profiles", "import", str(tmp_path / "ddp.yaml"), "--name", "p")
    (project / ".trainwiz" / "profiles").mkdir(parents=True)
    (project / ".trainwiz" / "profiles" / "p.yaml").write_text("strategy: single\n")
    r = run_cli("profiles", "show", "p", "--json", cwd=project / "src")
    assert json.loads(r.stdout)["profile"] == {"version": 1, "strategy": "single"}
    r = run_cli("profiles", "list", "--json", cwd=project / "src")
    assert [(e["scope"], e["shadowed"]) for e in json.loads(r.stdout)] == \
        [("project", False), ("user", True)]


def test_config_needs_a_terminal(run_cli):
    r = run_cli("config", "--plain", "--simulate", "2xH100-80GB")
    assert r.returncode == 2 and "needs a terminal" in r.stderr


def test_importing_a_trainwiz_profile_keeps_its_comments(run_cli, isolated_env, tmp_path):
    text = "# for the 8-GPU box\nstrategy: fsdp  # sharded\nnum_processes: 8\n"
    (tmp_path / "mine.yaml").write_text(text)
    r = run_cli("profiles", "import", "mine.yaml", "--name", "mine", "--project")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".trainwiz" / "profiles" / "mine.yaml").read_text() == text


def test_show_warns_about_gpus_this_box_does_not_have(run_cli, tmp_path):
    (tmp_path / "p.yaml").write_text("strategy: ddp\ngpu_ids: [0, 5]\n")
    r = run_cli("profiles", "show", "p.yaml", "--simulate", "2xH100-80GB")
    assert r.returncode == 0
    assert "GPU 5 does not exist on this machine; allowed: 0 to 1" in r.stdout


def test_show_with_a_bad_simulate_spec_is_an_error_not_a_shrug(run_cli, tmp_path):
    (tmp_path / "p.yaml").write_text("strategy: ddp\n")
    r = run_cli("profiles", "show", "p.yaml", "--simulate", "8xBOGUS")
    assert r.returncode == 2
    assert "unknown GPU 'BOGUS'" in r.stderr and r.stdout == ""
    r = run_cli("profiles", "export", "p.yaml", "--format", "accelerate", "--simulate", "8xBOGUS")
    assert r.returncode == 2 and "unknown GPU 'BOGUS'" in r.stderr


PLANNED_ON_H100 = """\
version: 1
strategy: fsdp
mixed_precision: bf16
num_processes: 2
fsdp: {version: 2, sharding_strategy: FULL_SHARD}
estimate: {model: llama-3-8b, batch_size: 1, seq_len: 2048}
hardware:
  gpu: NVIDIA H100 80GB HBM3
  gpu_memory: 85520809984
  gpus_per_machine: 2
  simulated: true
"""


def test_show_on_another_box_says_whether_the_plan_fits_there(run_cli, isolated_env):
    """The verdict is the plan's, against the GPUs it was made for; `--simulate 2x4090` also
    asks about that box, which used to get only "this box has 2× ... 4090"."""
    folder = _user_dir(isolated_env)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "h100.yaml").write_text(PLANNED_ON_H100)
    r = run_cli("profiles", "show", "h100", "--simulate", "2x4090", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    planned = next(line for line in lines if line.startswith("Memory per GPU: "))
    needed = planned.removeprefix("Memory per GPU: ").split(" of ")[0]
    assert " of 79.6 GiB — " in planned
    assert any(line.startswith(f"On this box: {needed} of 24.0 GiB — does not fit")
               for line in lines), lines
    same = run_cli("profiles", "show", "h100", "--simulate", "2xH100-80GB")
    assert same.returncode == 0 and "On this box" not in same.stdout


def test_outside_text_with_control_characters_never_reaches_the_terminal(run_cli, isolated_env,
                                                                        tmp_path):
    """A profile's GPU name with '\\x1b[2J' blanked the app's Profiles screen; a script path
    with one recoloured the error that quoted it. The file is refused, each key named, and an
    error quoting a typed name prints without the escape."""
    (tmp_path / "esc.yaml").write_text(
        'version: 1\nhardware: {gpu: "Fake GPU\\e[2J", gpu_memory: 1000000000}\n'
        'script: "tr\\e[31mred.py"\ndescription: "left\\u202eright"\n')
    r = run_cli("profiles", "import", "esc.yaml", "--name", "esc")
    assert r.returncode == 2 and "\x1b" not in r.stderr and "\u202e" not in r.stderr
    for line, key, char in ((2, "hardware.gpu", "\\x1b"), (3, "script", "\\x1b"),
                            (4, "description", "\\u202e")):
        assert f"esc.yaml:{line}: key '{key}' has a control character ({char})" in r.stderr
    assert not (_user_dir(isolated_env) / "esc.yaml").exists()
    r = run_cli("profiles", "show", "no\x1b[2Jsuch")
    assert r.returncode == 2 and "\x1b" not in r.stderr and "no[2J" not in r.stderr


def test_a_cpu_profile_on_a_simulated_gpu_box_gets_no_gpu_time(run_cli, isolated_env):
    """`--simulate 2x4090` on a device: cpu profile printed '~8,080 tokens/s ... MFU 4%', a GPU
    time for CPU ranks."""
    folder = _user_dir(isolated_env)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu2.yaml").write_text("version: 1\nstrategy: ddp\ndevice: cpu\nnum_processes: 2\n"
                                      "estimate: {model: gpt2}\n")
    r = run_cli("profiles", "show", "cpu2", "--simulate", "2x4090")
    assert r.returncode == 0, r.stderr
    assert "tokens/s" not in r.stdout and "MFU" not in r.stdout
    assert "time: not estimated (CPU ranks; the time model covers GPUs)" in r.stdout


def test_a_key_given_twice_is_refused_not_last_one_wins(run_cli, isolated_env, tmp_path):
    """`num_processes: 2` then `num_processes: 4` imported silently with 4."""
    (tmp_path / "dup.yaml").write_text("version: 1\nnum_processes: 2\nstrategy: ddp\n"
                                       "num_processes: 4\n")
    r = run_cli("profiles", "import", "dup.yaml", "--name", "dup")
    assert r.returncode == 2
    assert (f"trainwiz: {Path('dup.yaml')}:4: key 'num_processes' is given twice (lines 2 and 4)"
            in r.stderr)
    assert not (_user_dir(isolated_env) / "dup.yaml").exists()


def test_a_machine_address_that_is_no_host_name_is_refused(run_cli, isolated_env, tmp_path):
    """'my host [bold' was taken and became --rdzv-endpoint 'my host [bold:29500'."""
    (tmp_path / "two.yaml").write_text("version: 1\nstrategy: ddp\nnum_machines: 2\n"
                                       "main_address: my host [bold\nmain_port: 29500\n")
    r = run_cli("profiles", "import", "two.yaml", "--name", "two")
    assert r.returncode == 2
    assert (f"{Path('two.yaml')}:4: key 'main_address': 'my host [bold' is not allowed; allowed: "
            "a host name or IP address of machine 0" in r.stderr)


def test_a_single_process_profile_is_not_described_as_all_gpus(run_cli, tmp_path):
    """`strategy: single` runs one process on one GPU: it read 'single, all GPUs'."""
    path = tmp_path / "one.yaml"
    path.write_text("version: 1\nstrategy: single\n")
    shown = run_cli("profiles", "show", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "single, 1 GPU, mixed precision: no" in shown.stdout
    assert "all GPUs" not in shown.stdout
    cpu = tmp_path / "cpu.yaml"
    cpu.write_text("version: 1\nstrategy: single\ndevice: cpu\n")
    assert "single, 1 CPU rank, mixed precision: no" in run_cli("profiles", "show",
                                                                  str(cpu)).stdout
