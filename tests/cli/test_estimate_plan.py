"""`trainwiz estimate` prices through the same plan as the app's wizard: the same changes, in the
same words, with the same figures; and a run on fewer GPUs than the box has is still shown what
the box's other GPUs would add."""

from __future__ import annotations

import json

from trainwiz.hardware import detect
from trainwiz.plan import Plan, box_from_gpus, resolve_model


def test_estimate_suggests_what_the_wizard_suggests(run_cli):
    out = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--strategy", "ddp",
                  "--json")
    assert out.returncode == 0, out.stderr
    printed = {(s["note"], s["total"]) for s in json.loads(out.stdout)["suggestions"]}
    detection = detect("2xH100-80GB")
    plan = Plan.for_box(box_from_gpus(detection.gpus, simulated=True))  # the wizard's start
    assert plan.config.strategy == "ddp" and plan.config.num_gpus == 2
    wizard = {(s.note, s.total) for s in plan.estimate(resolve_model("llama-3-8b")).suggestions}
    assert printed == wizard
    assert any("2 machines × 2 GPUs" in note for note, _ in printed)


def test_one_gpu_of_two_is_shown_what_the_second_would_add(run_cli):
    out = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--strategy", "single",
                  "--json")
    assert out.returncode == 0, out.stderr
    both = [s for s in json.loads(out.stdout)["suggestions"]
            if s["change"].get("num_gpus") == 2 and s["fits"]]
    assert both and not any("machines" in s["note"] for s in both)


def test_estimate_starts_where_the_wizard_and_config_start(run_cli):
    # gpt2 was priced at seq 2048 with FSDP by `estimate`, at 1024 with DDP by the app and
    # `config --plain`: one default, the plan model's, for the same model on the same box
    from trainwiz.plan import default_seq_len

    box = box_from_gpus(detect("2xH100-80GB").gpus, simulated=True)
    for name, seq in (("gpt2", 1024), ("llama-3-8b", 2048)):
        out = run_cli("estimate", name, "--simulate", "2xH100-80GB", "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        model = resolve_model(name)
        assert default_seq_len(model) == seq
        start = Plan.for_box(box, name).with_changes({"seq_len": default_seq_len(model)})
        assert data["config"] == start.config.to_json()
        assert data["config"]["strategy"] == "ddp" and data["config"]["seq_len"] == seq
        assert data["per_gpu"]["total"] == start.estimate(model).estimate.per_gpu.total
    text = run_cli("estimate", "gpt2", "--simulate", "2xH100-80GB").stdout
    assert "seq 1024" in text and "note: seq 1,024: gpt2's maximum" in text
    one = json.loads(run_cli("estimate", "gpt2", "--simulate", "1xH100-80GB", "--json").stdout)
    assert one["config"]["strategy"] == "single"
