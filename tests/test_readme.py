"""The README's examples are what the program prints today: the first `trainwiz estimate` example
line by line, and the figures of the wizard sketch (the same plan) in that estimate."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
COMMAND = "$ trainwiz estimate llama-3-8b --simulate 2xH100-80GB --strategy ddp\n"


def test_the_first_example_is_what_estimate_prints(run_cli):
    block = README.split(COMMAND, 1)[1].split("```", 1)[0]
    proc = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--strategy", "ddp")
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.splitlines()
    missing = [line for line in block.strip().splitlines() if line not in printed]
    assert not missing, f"README lines the estimate no longer prints: {missing}"


def test_the_wizard_sketch_shows_the_same_figures(run_cli):
    sketch = README.split("The wizard in the app", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    proc = run_cli("estimate", "llama-3-8b", "--simulate", "2xH100-80GB", "--strategy", "ddp",
                   "--batch-size", "1")
    figures = set(re.findall(r"\d+\.\d GiB|\d[\d,]*,\d{3} tokens/s", proc.stdout))
    shown = re.findall(r"(\d+\.\d) GiB", " ".join(sketch.split()))
    assert shown and all(f"{g} GiB" in figures for g in shown), (shown, figures)
    # the speeds and ratios it states ("~17,700", "~1.6×", "~36×"), and the step time and MFU
    approx = re.findall(r"~\d[\d,.]*×?", sketch) + re.findall(r"\d+\.\d+ s per step|MFU \d+%",
                                                          sketch)
    assert len(approx) >= 6 and all(a in proc.stdout for a in approx), approx
