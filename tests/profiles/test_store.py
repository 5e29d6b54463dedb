"""Profile files on disk: short files, round trips, atomic writes, nothing of the user's lost."""

from __future__ import annotations

import errno
import os

import pytest
import yaml

from trainwiz.profiles import (
    EstimateInputs,
    FsdpOptions,
    Profile,
    ProfileError,
    ProfileExistsError,
    ProfileStore,
    load_profile,
    profile_from_dict,
    profile_to_dict,
    save_profile,
    user_profiles_dir,
)


@pytest.fixture
def home(isolated_env, tmp_path, monkeypatch):
    """Private XDG dirs and a project folder (a git checkout) as the cwd."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    monkeypatch.chdir(project)
    return project


def test_defaults_are_not_written(home):
    path = save_profile(Profile(name="plain"))
    assert yaml.safe_load(path.read_text()) == {"version": 1}
    fsdp = Profile(name="f", strategy="fsdp", gpu_ids=[0, 1], mixed_precision="bf16",
                   fsdp=FsdpOptions(sharding_strategy="SHARD_GRAD_OP"),
                   estimate=EstimateInputs(model="llama-3-8b", batch_size=4))
    text = save_profile(fsdp).read_text()
    assert text == ("version: 1\nstrategy: fsdp\nfsdp:\n  sharding_strategy: SHARD_GRAD_OP\n"
                    "mixed_precision: bf16\ngpu_ids: [0, 1]\nestimate:\n  model: llama-3-8b\n"
                    "  batch_size: 4\n")


def test_round_trip_keeps_every_field(home):
    p = Profile(name="everything", strategy="fsdp", mixed_precision="fp16", gpu_ids=[2, 3],
                num_processes=2, num_machines=2, machine_rank=1, main_address="node0",
                main_port=29555, rdzv_backend="static", max_restarts=2, launcher="accelerate",
                python="/opt/env/bin/python", env={"NCCL_DEBUG": "INFO", "OMP_NUM_THREADS": "4"},
                script="train.py", script_args=["--lr", "1e-4", "--flag"],
                description="two nodes",
                fsdp=FsdpOptions(version=1, sharding_strategy="HYBRID_SHARD",
                                 auto_wrap_policy="SIZE_BASED_WRAP", min_num_params=1_000_000,
                                 backward_prefetch="BACKWARD_POST", forward_prefetch=True,
                                 offload_params=True, state_dict_type="FULL_STATE_DICT",
                                 cpu_ram_efficient_loading=False, sync_module_states=False,
                                 use_orig_params=False, activation_checkpointing=True),
                estimate=EstimateInputs(model="params:7e9", batch_size=2, seq_len=4096,
                                        optimizer="adafactor", grad_accum=8,
                                        activation_checkpointing=True, attention="eager"))
    save_profile(p, scope="project")
    assert load_profile("everything") == p
    assert profile_from_dict(profile_to_dict(p), source="x", name="everything") == p


def test_no_overwrite_without_force_and_the_old_bytes_stay(home):
    first = save_profile(Profile(name="p", mixed_precision="bf16"))
    before = first.read_bytes()
    with pytest.raises(ProfileExistsError) as info:
        save_profile(Profile(name="p", mixed_precision="fp16"))
    assert isinstance(info.value, ProfileError) and isinstance(info.value, FileExistsError)
    assert "--force" in str(info.value) and str(first) in str(info.value)
    assert first.read_bytes() == before
    save_profile(Profile(name="p", mixed_precision="fp16"), force=True)
    assert load_profile("p").mixed_precision == "fp16"
    assert [f.name for f in first.parent.iterdir()] == ["p.yaml"]  # no temp files left


def test_write_is_atomic_a_failed_write_leaves_the_file(home, monkeypatch):
    path = save_profile(Profile(name="p", mixed_precision="bf16"))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(ProfileError, match="cannot be written: the disk is full; nothing was "
                                           "changed") as info:
        save_profile(Profile(name="p", mixed_precision="fp16"), force=True)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert [f.name for f in path.parent.iterdir()] == ["p.yaml"]


def test_invalid_profile_is_not_saved(home):
    with pytest.raises(ProfileError, match="listed twice"):
        save_profile(Profile(name="bad", gpu_ids=[0, 0]))
    assert not (user_profiles_dir() / "bad.yaml").exists()
    with pytest.raises(ProfileError, match="not allowed"):
        save_profile(Profile(name="../escape"))


def test_user_store_honours_xdg_config_home(home, isolated_env):
    path = save_profile(Profile(name="u"))
    assert path == user_profiles_dir() / "u.yaml"
    assert str(path).startswith(isolated_env["XDG_CONFIG_HOME"])


def test_project_store_beats_user_store_and_git_root_is_found(home):
    save_profile(Profile(name="same", mixed_precision="fp16"))
    project_file = save_profile(Profile(name="same", mixed_precision="bf16"), scope="project")
    assert project_file == home / ".trainwiz" / "profiles" / "same.yaml"
    sub = home / "src" / "deep"
    sub.mkdir(parents=True)
    assert load_profile("same", cwd=sub).mixed_precision == "bf16"
    entries = ProfileStore(sub).list()
    assert [(e.scope, e.shadowed) for e in entries if e.name == "same"] == \
        [("project", False), ("user", True)]


def test_a_path_works_wherever_a_name_does(home, tmp_path):
    f = tmp_path / "elsewhere.yml"
    f.write_text("strategy: ddp\nnum_processes: 2\n")
    assert load_profile(str(f)).num_processes == 2
    assert load_profile(str(f)).name == "elsewhere"


def test_unknown_name_suggests_a_close_one(home):
    save_profile(Profile(name="fsdp-8gpu"))
    with pytest.raises(ProfileError, match="did you mean 'fsdp-8gpu'"):
        load_profile("fsdp-8gpus")


def test_damaged_file_is_listed_with_its_error_and_left_untouched(home):
    good = save_profile(Profile(name="good"))
    folder = good.parent
    damaged = {"broken.yaml": b"strategy: fsdp\nfsdp:\n  sharding_stratgy: X\n",
               "syntax.yaml": b"gpu_ids: [0,\n",
               "binary.yaml": b"\xff\xfe\x00garbage"}
    for name, data in damaged.items():
        (folder / name).write_bytes(data)
    stamps = {n: os.stat(folder / n).st_mtime_ns for n in damaged}
    store = ProfileStore()
    entries = {e.name: e for e in store.list()}
    assert set(entries) == {"good", "broken", "syntax", "binary"}
    assert not entries["good"].damaged
    assert "did you mean 'sharding_strategy'" in entries["broken"].error
    assert "not valid YAML" in entries["syntax"].error
    assert entries["binary"].damaged
    # copying a damaged profile is refused; nothing is rewritten, nothing deleted
    with pytest.raises(ProfileError):
        store.copy("broken", "fixed")
    for name, data in damaged.items():
        assert (folder / name).read_bytes() == data
        assert os.stat(folder / name).st_mtime_ns == stamps[name]
    assert not (folder / "fixed.yaml").exists()


def test_copy_and_remove(home):
    src = save_profile(Profile(name="a", mixed_precision="bf16"), scope="project")
    src.write_text("# my notes\n" + src.read_text())
    store = ProfileStore()
    new = store.copy("a", "b")
    assert new.parent == src.parent and new.read_text() == src.read_text()  # comments kept
    with pytest.raises(ProfileExistsError):
        store.copy("a", "b")
    store.remove("b")
    assert not new.exists() and src.exists()
