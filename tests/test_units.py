"""One size convention for the whole program: an option, a profile and a box file read `80G` alike."""

from __future__ import annotations

import json

import pytest

from trainwiz.errors import UsageError
from trainwiz.units import parse_size

GIB = 1 << 30


@pytest.mark.parametrize("text, expected", [
    ("80G", 80 * GIB), ("80GiB", 80 * GIB), ("80 gib", 80 * GIB), ("80GB", 80 * 10**9),
    ("81559MiB", 81559 << 20), ("1.5T", int(1.5 * (1 << 40))), ("8.5e10", 85_000_000_000),
    (4096, 4096),
])
def test_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "80 GiBs", "-1G", "0", True, "1e30"])
def test_bad_sizes_are_one_clear_line(bad):
    with pytest.raises(UsageError) as err:
        parse_size(bad, "--gpu-memory")
    assert str(err.value).startswith("--gpu-memory") and "\n" not in str(err.value)


def test_80G_means_the_same_on_the_command_line_and_in_a_box_file(run_cli, tmp_path):
    (tmp_path / "box.yaml").write_text("gpus:\n  - {preset: H100-80GB, count: 2, memory_total: 80G}\n")
    from_file = json.loads(run_cli("gpus", "--simulate", "box.yaml", "--json").stdout)
    est = json.loads(run_cli("estimate", "gpt2", "--gpu-memory", "80G", "--json").stdout)
    assert from_file[0]["memory_total"] == est["gpu_memory"] == 80 * GIB


def test_a_gpu_memory_without_a_unit_is_refused_not_read_as_bytes(run_cli):
    """`--gpu-memory 80` meant 80 GiB; read as 80 bytes it printed 'needs 178.7 GiB of 80 B'."""
    out = run_cli("estimate", "llama-3-8b", "--gpu-memory", "80")
    assert out.returncode == 2 and out.stdout == ""
    assert "--gpu-memory" in out.stderr and "80GiB" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
