"""The time model against published training throughput (validation/throughput_rows.json)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT
from validation import throughput

RESULTS = {r["row"]["id"]: r for r in throughput.evaluate()}


def test_there_are_enough_rows_from_several_sources_and_some_are_held_out():
    rows = [r["row"] for r in RESULTS.values()]
    assert len(rows) >= 10
    assert {r["source"] for r in rows} >= {"llm-foundry", "torchtitan"}
    held_out = [r for r in rows if r["use"] == "held-out"]
    # the held-out rows are what the issue asks for: dense Llama models, FSDP, A100/H100, at
    # least five of them on 8 to 64 GPUs
    assert all(r["model"].startswith("llama") and r["gpu"][:4] in ("A100", "H100")
               for r in held_out)
    assert sum(8 <= r["num_gpus"] <= 64 for r in held_out) >= 5


@pytest.mark.parametrize("row_id", [k for k, r in RESULTS.items() if r["row"]["use"] == "calibration"])
def test_calibration_rows_within_25_percent(row_id):
    r = RESULTS[row_id]
    assert abs(r["error"]) <= throughput.CALIBRATION_LIMIT, (
        f"{row_id}: estimated {r['estimated']:.0f} tokens/s/GPU, published {r['published']}")


@pytest.mark.parametrize("row_id", [k for k, r in RESULTS.items() if r["row"]["use"] == "held-out"])
def test_held_out_rows_within_30_percent(row_id):
    r = RESULTS[row_id]
    assert abs(r["error"]) <= throughput.HELD_OUT_LIMIT, (
        f"{row_id}: estimated {r['estimated']:.0f} tokens/s/GPU, published {r['published']}")


def test_the_committed_report_is_what_the_generator_writes():
    expected = throughput.markdown(list(RESULTS.values()), throughput.load())
    committed = (REPO_ROOT / "docs" / "throughput.md").read_text(encoding="utf-8")
    assert committed == expected, "regenerate: python -m validation.throughput --markdown docs/throughput.md"
