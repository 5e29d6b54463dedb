"""The training loop and bf16-pure in profiles: the file, `profiles show`, the estimate it asks
for, and what accelerate is told."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.profiles.test_accelerate import _export, meaning
from trainwiz.launchers.command import accelerate_env
from trainwiz.profiles import (
    EstimateInputs,
    Profile,
    accelerate_export_notes,
    estimate_request,
    profile_from_dict,
    profile_to_dict,
)

PURE = """\
strategy: fsdp
mixed_precision: bf16-pure
gpu_ids: [0, 1]
estimate:
  model: llama-3.2-1b
  batch_size: 4
  loop: trainer
"""


def test_loop_and_bf16_pure_reach_the_estimate(tmp_path):
    p = profile_from_dict(yaml.safe_load(PURE), source="pure.yaml", name="pure")
    assert p.estimate.loop == "trainer" and p.mixed_precision == "bf16-pure"
    _, cfg = estimate_request(p)
    assert (cfg.loop, cfg.precision, cfg.num_gpus) == ("trainer", "bf16-pure", 2)
    # the default loop is custom, and a default is not written to the file
    plain = Profile(name="p", estimate=EstimateInputs(model="gpt2"))
    assert estimate_request(plain)[1].loop == "custom"
    assert "loop" not in profile_to_dict(plain)["estimate"]
    assert profile_to_dict(p)["estimate"]["loop"] == "trainer"


def test_profiles_show_says_which_loop(run_cli, tmp_path):
    (tmp_path / "pure.yaml").write_text(PURE)
    r = run_cli("profiles", "show", str(tmp_path / "pure.yaml"), "--simulate", "2xH100-80GB")
    assert r.returncode == 0, r.stderr
    assert "mixed_precision: bf16-pure" in r.stdout and "loop: trainer" in r.stdout
    assert "loop: trainer (outputs dropped before backward" in r.stdout
    assert "Memory per GPU:" in r.stdout
    assert "note: bf16-pure: the script loads the model in bf16" in r.stdout
    (tmp_path / "custom.yaml").write_text("strategy: single\nestimate:\n  model: gpt2\n")
    r = run_cli("profiles", "show", str(tmp_path / "custom.yaml"), "--simulate", "1x4090")
    assert "loop: custom (outputs kept through backward" in r.stdout


def test_a_bad_loop_names_the_file_line_and_choices(run_cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("strategy: single\nestimate:\n  model: gpt2\n"
                                       "  loop: lightning\n")
    r = run_cli("profiles", "show", str(tmp_path / "bad.yaml"))
    assert r.returncode == 2
    assert r.stderr.strip() == (f"trainwiz: {tmp_path / 'bad.yaml'}:4: key 'estimate.loop': "
                                "'lightning' is not allowed; allowed: custom, trainer")


def test_bf16_pure_is_mixed_precision_no_to_accelerate(tmp_path, monkeypatch):
    p = profile_from_dict(yaml.safe_load(PURE), source="pure.yaml", name="pure")
    got = meaning(_export(p, tmp_path), monkeypatch)  # what accelerate's own launcher makes of it
    assert got["mixed_precision"] == "no" and got["distributed_type"] == "FSDP"
    (note,) = [n for n in accelerate_export_notes(p) if "bf16-pure" in n]
    assert "torch_dtype=torch.bfloat16" in note
    assert accelerate_env(p)["ACCELERATE_MIXED_PRECISION"] == "no"


def test_export_says_what_accelerate_cannot_hold(run_cli, tmp_path):
    (tmp_path / "pure.yaml").write_text(PURE)
    r = run_cli("profiles", "export", str(tmp_path / "pure.yaml"), "--format", "accelerate")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["mixed_precision"] == "no"
    assert "bf16-pure" in r.stderr
    assert Path(tmp_path / "pure.yaml").read_text() == PURE


def test_every_estimator_precision_has_a_profile_value_and_back():
    from trainwiz.estimator.types import PRECISIONS
    from trainwiz.profiles.estimator_inputs import mixed_precision_for

    for precision in PRECISIONS:
        p = Profile(name="p", mixed_precision=mixed_precision_for(precision),
                    estimate=EstimateInputs(model="gpt2"))
        assert estimate_request(p)[1].precision == precision
