"""The PEFT LoRA example, launched by trainwiz on 2 CPU ranks (DDP over gloo) from the example
profile, as a user would: it trains, and the trainable count PEFT prints in the run is the one
trainwiz's estimate of that profile gives."""

from __future__ import annotations

import re
import sys

import pytest
import yaml

from tests.launchers.helpers import EXAMPLES, launched_dir, runs_json
from trainwiz.estimator.adapters import adapted
from trainwiz.estimator.catalog import resolve_model

pytestmark = pytest.mark.slow
pytest.importorskip("peft")


def test_lora_example_trains_on_two_cpu_ranks_with_the_planned_adapters(run_cli, tmp_path):
    data = yaml.safe_load((EXAMPLES / "profiles" / "cpu-lora.yaml").read_text())
    data["python"] = sys.executable
    data["estimate"]["model"] = str(EXAMPLES / "tiny-llama")
    prof = tmp_path / "cpu-lora.yaml"
    prof.write_text(yaml.safe_dump(data, sort_keys=False))
    out = run_cli("launch", "--profile", str(prof), str(EXAMPLES / "train_lora.py"), "--",
                  "--steps", "3", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    [run] = runs_json(run_cli)
    assert run["state"] == "succeeded"
    launched_dir(out.stdout)
    assert "rank 1 step 2 loss" in run_cli("logs", run["id"], "--rank", "1").stdout
    text = run_cli("logs", run["id"], "--rank", "0").stdout
    printed = re.search(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)", text)
    assert printed, text[-2000:]
    lora = data["estimate"]["lora"]
    a = adapted(resolve_model(str(EXAMPLES / "tiny-llama")), "lora", lora["rank"], lora["targets"])
    assert (int(printed[1].replace(",", "")), int(printed[2].replace(",", ""))) == (a.trainable,
                                                                                   a.total)
