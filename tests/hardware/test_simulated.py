"""The simulated backend: presets, spec spelling, YAML boxes, and real numbers under CPU ranks."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from trainwiz.errors import TrainwizError
from trainwiz.hardware import PRESETS, GpuSampler, detect, parse_simulate

MiB = 1 << 20
GiB = 1 << 30


def test_presets_cover_the_cards_people_rent_with_real_figures():
    expected = {"H100-80GB", "H100-PCIE", "H200", "A100-40GB", "A100-80GB", "L40S", "A10G", "L4",
                "4090", "3090", "V100-16GB", "V100-32GB", "T4", "B200", "H100-NVL",
                "A100-80GB-PCIE", "A6000"}
    assert expected <= set(PRESETS)
    h100 = parse_simulate("1xH100-80GB")[0]
    assert h100.memory_total == 81559 * MiB  # what nvidia-smi shows on an 80GB H100
    assert h100.compute_capability == "9.0" and h100.power_limit == 700.0
    assert parse_simulate("T4")[0].supports_bf16 is False
    assert parse_simulate("4090")[0].name == "NVIDIA GeForce RTX 4090"
    for preset in PRESETS.values():
        g = parse_simulate(preset.key)[0]
        assert g.memory_total == preset.memory_total and g.memory_free == g.memory_total
        assert g.compute_capability and g.power_limit


@pytest.mark.parametrize("spec, count, name", [
    ("8xH100-80GB", 8, "NVIDIA H100 80GB HBM3"),
    ("8xH100", 8, "NVIDIA H100 80GB HBM3"),
    ("h100-80gb", 1, "NVIDIA H100 80GB HBM3"),
    ("2x4090", 2, "NVIDIA GeForce RTX 4090"),
    ("2 x RTX 4090", 2, "NVIDIA GeForce RTX 4090"),
    ("4X a100-80", 4, "NVIDIA A100-SXM4-80GB"),
    ("1xL4", 1, "NVIDIA L4"),
    ("2xL40S", 2, "NVIDIA L40S"),
    ("8xB200", 8, "NVIDIA B200"),
    ("2xa100-80gb-pcie", 2, "NVIDIA A100 80GB PCIe"),
])
def test_forgiving_spelling_where_unambiguous(spec, count, name):
    gpus = parse_simulate(spec)
    assert len(gpus) == count and {g.name for g in gpus} == {name}
    assert [g.index for g in gpus] == list(range(count))
    assert len({g.uuid for g in gpus}) == count and all(g.uuid.startswith("GPU-") for g in gpus)


def test_mixed_groups():
    gpus = parse_simulate("2xA100-80GB+2xL4")
    assert [g.name for g in gpus] == ["NVIDIA A100-SXM4-80GB"] * 2 + ["NVIDIA L4"] * 2
    assert [g.index for g in gpus] == [0, 1, 2, 3]


@pytest.mark.parametrize("spec, words", [
    ("8xA100", "ambiguous, say which: A100-40GB, A100-80GB, A100-80GB-PCIE"),
    ("2xL40", "unknown GPU 'L40' (did you mean L40S?)"),  # the L40 is another card: no guess
    ("V100", "ambiguous"),
    ("8xH1OO", "unknown GPU 'H1OO'"),
    ("0xH100", "at least 1"),
    ("", "empty"),
    ("2xH100+", "empty GPU group"),
    ("missing.yaml", "no such file"),
])
def test_bad_specs_list_the_presets(spec, words):
    with pytest.raises(TrainwizError) as err:
        parse_simulate(spec)
    assert words in str(err.value)
    if spec:
        assert "H100-80GB" in str(err.value) and "2x4090" in str(err.value)
    assert err.value.exit_code == 2


def test_uuids_are_stable_for_a_spec():
    assert [g.uuid for g in parse_simulate("2xH100")] == [g.uuid for g in parse_simulate("2xH100")]


BUSY = """
gpus:
  - {preset: H100-80GB, count: 2}
  - preset: a100-80gb
    memory_used: 30GiB
    utilization: 95
    processes:
      - {pid: 4242, memory_used: 30GiB, name: python}
  - {name: My card, memory_total: 48GB, compute_capability: "8.6"}
  - 2xL4
host: {cpu_count: 96, ram_total: 1TiB}
"""


def test_yaml_box_mixed_and_busy(tmp_path):
    path = tmp_path / "box.yaml"
    path.write_text(BUSY)
    det = detect(str(path))
    assert det.source == "simulated" and "Planning mode" in det.message
    names = [g.name for g in det.gpus]
    assert names == ["NVIDIA H100 80GB HBM3"] * 2 + ["NVIDIA A100-SXM4-80GB", "My card"] + [
        "NVIDIA L4"] * 2
    assert [g.index for g in det.gpus] == list(range(6))
    busy = det.gpus[2]
    assert busy.memory_used == 30 * GiB and busy.memory_free == 81920 * MiB - 30 * GiB
    assert busy.utilization == 95.0 and [(p.pid, p.name) for p in busy.processes] == [(4242, "python")]
    assert det.gpus[3].memory_total == 48 * 10**9 and det.gpus[3].compute_capability == "8.6"
    assert det.host.cpu_count == 96 and det.host.ram_total == 1 << 40
    assert len({g.uuid for g in det.gpus}) == 6


@pytest.mark.parametrize("text, words", [
    ("gpus: [{preset: H100, colour: red}]",
     "box.yaml:1: unknown key 'gpus[0].colour'; allowed keys in 'gpus[0]': preset, count"),
    ("gpus: [{preset: A100}]", "box.yaml:1: key 'gpus[0].preset': 'A100' is ambiguous"),
    ("gpus: [{preset: Z9}]", "box.yaml:1: key 'gpus[0].preset': 'Z9' is not allowed; "
                             "allowed: H100-80GB"),
    ("gpus: [{preset: H100, memory_used: lots}]",
     "box.yaml:1: key 'gpus[0].memory_used': cannot read 'lots' as a size"),
    ("gpus: [{preset: H100, count: 0}]", "box.yaml:1: key 'gpus[0].count' must be at least 1"),
    ("gpus: [{name: X}]", "missing memory_total"),
    ("gpus: [{preset: H100, utilization: 150}]",
     "key 'gpus[0].utilization' must be from 0 to 100, not 150"),
    ("gpus: [{preset: H100, compute_capability: nine}]", "MAJOR.MINOR"),
    ("gpus: []", "non-empty list"),
    ("cards: []", "'gpus' list"),
    ("gpus: [H100]\nhost: {ram: 1TiB}", "box.yaml:2: unknown key 'host.ram'; allowed keys in "
                                        "'host': cpu_count, ram_total, ram_available"),
    ("gpus: [\n", "not valid YAML"),
    ("gpus:\n  - preset: H100\n  - preset: L4\n    processes:\n      - {pid: x}\n",
     "box.yaml:5: key 'gpus[1].processes[0].pid' must be an integer, not a string 'x'"),
])
def test_yaml_errors_name_file_field_and_allowed_values(tmp_path, text, words):
    path = tmp_path / "box.yaml"
    path.write_text(text)
    with pytest.raises(TrainwizError) as err:
        parse_simulate(str(path))
    assert str(err.value).startswith(str(path)) and words in str(err.value)
    assert err.value.exit_code == 2


def test_every_mistake_in_a_box_file_is_named_at_once_on_its_line(tmp_path):
    path = tmp_path / "box.yaml"
    path.write_text("gpus:\n  - preset: H100\n    memory: 3GiB\n  - 2xH1OO\n"
                    "  - {preset: L4, temperature: hot}\n")
    with pytest.raises(TrainwizError) as err:
        parse_simulate(str(path))
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: 3 problems"
    assert lines[1].startswith(f"  {path}:3: unknown key 'gpus[0].memory' (did you mean "
                               "'memory_used'?); allowed keys in 'gpus[0]': preset, count, name")
    assert lines[2].startswith(f"  {path}:4: key 'gpus[1]': simulate spec '2xH1OO': unknown GPU")
    assert lines[3] == f"  {path}:5: key 'gpus[2].temperature' must be a number, not a string 'hot'"


def test_sampler_without_pids_is_the_static_box():
    sampler = GpuSampler("2xH100")
    snap = sampler.sample()
    assert [g.memory_used for g in snap.gpus] == [0, 0]
    assert snap.timestamp == pytest.approx(time.time(), abs=5)


def test_sampler_carries_real_memory_of_cpu_ranks(tmp_path):
    """A CPU rank 'on' simulated GPU 1 shows its real RSS there, and it moves as it grows."""
    script = (
        "import sys, time\n"
        "blocks = [bytearray(64 << 20)]\n"
        "for b in blocks: b[::4096] = b'x' * len(b[::4096])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "blocks.append(bytearray(b'y' * (192 << 20)))\n"
        "print('grown', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        path = tmp_path / "box.yaml"
        path.write_text("gpus:\n  - {preset: H100-80GB}\n  - {preset: H100-80GB, memory_used: 1GiB}\n")
        sampler = GpuSampler(str(path))
        first = sampler.sample({1: [proc.pid]}).gpus
        assert first[0].memory_used == 0 and first[0].processes == ()
        gpu = first[1]
        assert [p.pid for p in gpu.processes] == [proc.pid]
        rss = gpu.processes[0].memory_used
        assert rss > 64 << 20
        assert gpu.memory_used == (1 << 30) + rss  # the box's baseline plus the rank's RSS
        assert gpu.memory_free == gpu.memory_total - gpu.memory_used
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "grown"
        later = sampler.sample({1: [proc.pid]}).gpus[1]
        assert later.memory_used >= gpu.memory_used + (150 << 20)
    finally:
        proc.kill()
        proc.wait()
    gone = sampler.sample({1: [proc.pid]}).gpus[1]  # a finished rank just disappears
    assert gone.processes == () and gone.memory_used == 1 << 30


def test_simulated_gpus_carry_their_links():
    h100 = parse_simulate("2xH100-80GB")[0]
    assert (h100.pcie_gen, h100.pcie_width, h100.nvlink_links) == (5, 16, 18)
    rtx = parse_simulate("2x4090")[0]
    assert (rtx.pcie_gen, rtx.nvlink_links) == (4, 0)
