"""LoRA/QLoRA in profiles: the file a user writes, what is refused, what the estimate gets."""

from __future__ import annotations

import pytest

from trainwiz.profiles import (
    EstimateInputs,
    LoraOptions,
    Profile,
    ProfileError,
    QuantizationOptions,
    estimate_request,
    profile_from_dict,
    profile_to_dict,
)
from trainwiz.profiles.validate import dump_yaml, parse_yaml

QLORA = """\
strategy: ddp
mixed_precision: bf16
estimate:
  model: llama-3-8b
  method: qlora
  lora: {rank: 16, alpha: 32, dropout: 0.05, targets: "q_proj,v_proj"}
  quantization: {type: nf4, double_quant: false}
"""


def _load(text: str) -> Profile:
    data, lines = parse_yaml(text, "p.yaml")
    return profile_from_dict(data, source="p.yaml", name="p", lines=lines)


def test_qlora_profile_round_trips_and_reaches_the_estimate():
    p = _load(QLORA)
    assert p.estimate.lora == LoraOptions(rank=16, alpha=32, dropout=0.05, targets="q_proj,v_proj")
    assert p.estimate.quantization == QuantizationOptions(double_quant=False)
    again = _load(dump_yaml(profile_to_dict(p)))
    assert again == p
    _, cfg = estimate_request(p, 2)
    assert (cfg.method, cfg.lora_rank, cfg.lora_targets, cfg.lora_dropout, cfg.double_quant) == (
        "qlora", 16, "q_proj,v_proj", 0.05, False)


def test_a_lora_profile_keeps_rank_and_targets_in_the_file():
    p = Profile(name="p", mixed_precision="bf16",
                estimate=EstimateInputs(model="llama-3-8b", method="lora", lora=LoraOptions()))
    assert profile_to_dict(p)["estimate"] == {"model": "llama-3-8b", "method": "lora",
                                              "lora": {"rank": 16, "targets": "all-linear"}}


@pytest.mark.parametrize("text,message", [
    (QLORA.replace("mixed_precision: bf16\n", ""),
     "key 'mixed_precision': QLoRA computes in bf16 or fp16"),
    (QLORA.replace("rank: 16", "rank: 0"), "p.yaml:6: key 'estimate.lora.rank' must be from 1 to 4096"),
    (QLORA.replace("dropout: 0.05", "dropout: 2"), "key 'estimate.lora.dropout' must be from 0"),
    (QLORA.replace("type: nf4", "type: int8"),
     "p.yaml:7: key 'estimate.quantization.type': 'int8' is not allowed; allowed: nf4, fp4"),
    (QLORA.replace("method: qlora", "method: lora"),
     "key 'estimate.quantization' is for method qlora, not lora"),
    (QLORA.replace("method: qlora", "method: full").replace(
        "  quantization: {type: nf4, double_quant: false}\n", ""),
     "key 'estimate.lora' is set but estimate.method is full"),
    (QLORA.replace("method: qlora", "method: dora"), "p.yaml:5: key 'estimate.method': 'dora' is "
     "not allowed (did you mean 'lora'?); allowed: full, lora, qlora"),
])
def test_bad_lora_settings_name_the_file_line_key_and_what_is_allowed(text, message):
    with pytest.raises(ProfileError) as e:
        _load(text)
    assert message in str(e.value)
    assert "problems" not in str(e.value)  # one mistake, one line


def test_profiles_show_names_the_method_of_the_example_profile(run_cli):
    from tests.conftest import REPO_ROOT

    path = REPO_ROOT / "examples" / "profiles" / "cpu-lora.yaml"
    proc = run_cli("profiles", "show", str(path), env={"COLUMNS": "200"}, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "ddp, 2 CPU ranks, mixed precision: no, LoRA r8 all-linear" in proc.stdout
    assert "method: lora" in proc.stdout and "rank: 8" in proc.stdout


def test_the_cli_and_the_app_describe_a_profile_in_the_same_words(run_cli, tmp_path):
    """`profiles list` said 'ddp, 2 CPU rank(s), mixed precision: no' where the app's Profiles
    screen said 'DDP · fp32 · 2 CPU ranks': one profile, two descriptions."""
    from trainwiz.profiles import load_profile
    from trainwiz.profiles.summary import profile_summary

    path = tmp_path / "two.yaml"
    path.write_text("version: 1\nstrategy: ddp\ndevice: cpu\nnum_processes: 2\n")
    shown = run_cli("profiles", "show", str(path)).stdout
    line = profile_summary(load_profile(str(path)))
    assert line == "ddp, 2 CPU ranks, mixed precision: no" and line in shown
    assert profile_summary(load_profile(str(path)), details=True).startswith(line)
