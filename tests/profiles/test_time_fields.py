"""A profile may hold the training length and the network, for the time estimate."""

from __future__ import annotations

import pytest

from trainwiz.profiles import ProfileError, profile_from_dict, profile_to_dict, time_request


def _load(estimate: dict, **top):
    return profile_from_dict({"strategy": "fsdp", **top, "estimate": {"model": "llama-3-8b", **estimate}},
                             source="plan.yaml", name="plan")


def test_training_length_and_network_round_trip():
    p = _load({"tokens": "1e8", "network": "400Gbps"}, num_machines=2, main_address="node0")
    assert time_request(p) == {"tokens": 100_000_000, "network": 50e9}
    written = profile_to_dict(p)["estimate"]
    assert written == {"model": "llama-3-8b", "tokens": 100_000_000, "network": "400Gbps"}
    assert time_request(_load({"steps": 5000})) == {"steps": 5000}
    assert "tokens" not in profile_to_dict(_load({}))["estimate"]  # defaults are not written


@pytest.mark.parametrize("estimate, words", [
    ({"tokens": -1}, "key 'estimate.tokens' must be from 1 to 1,000,000,000,000,000, not -1"),
    ({"tokens": 1e30}, "key 'estimate.tokens' must be from 1 to 1,000,000,000,000,000, not 1e+30"),
    ({"tokens": "lots"}, "key 'estimate.tokens': cannot read 'lots'"),
    ({"tokens": 10, "steps": 10}, "'estimate.tokens' and 'estimate.steps' are both set"),
    ({"network": "400Mbpx"}, "key 'estimate.network': cannot read '400Mbpx' as a network speed"),
])
def test_bad_time_fields_name_the_file_and_key(estimate, words):
    with pytest.raises(ProfileError) as exc:
        _load(estimate)
    assert "plan.yaml" in str(exc.value) and words in str(exc.value)


def test_a_profile_is_timed_with_its_training_length_on_the_runs_gpus():
    """What the wizard's panel and the monitor call: the plan's time from its profile."""
    from trainwiz.estimator.catalog import resolve_model
    from trainwiz.estimator.fit import estimate
    from trainwiz.hardware import parse_simulate
    from trainwiz.profiles import estimate_request, profile_time

    p = _load({"tokens": "1e9", "seq_len": 4096}, mixed_precision="bf16", num_processes=8)
    model, config = estimate_request(p, 8)
    gpus = parse_simulate("8xH100-80GB")
    est = estimate(resolve_model(model), config, gpu_memory=gpus[0].memory_total)
    time, _ = profile_time(p, est, [g.to_json() for g in gpus])  # as a run directory keeps them
    assert time.estimated and time.run_tokens == 10**9
    assert time.run_seconds == pytest.approx(time.run_steps * time.step_seconds)  # whole steps
    assert time.run_seconds == pytest.approx(1e9 / time.tokens_per_second, rel=1e-3)
    assert time.tokens_per_step == 8 * 4096


def test_profiles_show_says_how_long_the_plan_takes(run_cli, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("strategy: fsdp\nmixed_precision: bf16\n"
                    "estimate:\n  model: llama-3-8b\n  seq_len: 4096\n  tokens: 2e9\n")
    proc = run_cli("profiles", "show", str(plan), "--simulate", "8xH100-80GB")
    assert proc.returncode == 0, proc.stderr
    assert "tokens/s" in proc.stdout and "to train 2,000,000,000 tokens: about" in proc.stdout
    unknown = run_cli("profiles", "show", str(plan), "--simulate", "8xA10G")
    assert "time: not estimated (no data-sheet figures for NVIDIA A10G)" in unknown.stdout
