"""`trainwiz gpus` end to end: the real command in a subprocess."""

from __future__ import annotations

import json
import re

import pytest

from tests.hardware.fake_nvml import fake_nvml_env, sample_box

CONTRACT = {"index", "uuid", "name", "memory_total", "memory_used", "memory_free", "utilization",
            "temperature", "power_draw", "compute_capability", "processes"}


def test_json_contract_for_a_simulated_box(run_cli):
    res = run_cli("gpus", "--simulate", "8xH100-80GB", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert len(data) == 8
    for i, g in enumerate(data):
        assert CONTRACT <= set(g)
        assert g["index"] == i and g["name"] == "NVIDIA H100 80GB HBM3"
        assert g["memory_total"] == 81559 << 20 and g["memory_free"] == g["memory_total"]
        assert g["compute_capability"] == "9.0" and g["processes"] == []
    assert len({g["uuid"] for g in data}) == 8


def test_env_var_works_like_the_option(run_cli):
    res = run_cli("gpus", "--json", env={"TRAINWIZ_SIMULATE": "2x4090"})
    assert [g["name"] for g in json.loads(res.stdout)] == ["NVIDIA GeForce RTX 4090"] * 2
    res = run_cli("gpus", "--json", "--simulate", "1xT4", env={"TRAINWIZ_SIMULATE": "2x4090"})
    assert [g["name"] for g in json.loads(res.stdout)] == ["Tesla T4"]  # the option wins


def test_bad_spec_lists_presets_and_exits_2(run_cli):
    res = run_cli("gpus", "--simulate", "8xH1OO")
    assert res.returncode == 2
    assert res.stderr.startswith("trainwiz: ") and "H100-80GB" in res.stderr and "4090" in res.stderr
    assert res.stdout == ""


def test_table_for_a_busy_yaml_box(run_cli, tmp_path):
    path = tmp_path / "box.yaml"
    path.write_text("gpus:\n  - {preset: H100-80GB}\n"
                    "  - {preset: H100-80GB, memory_used: 60GiB, utilization: 99,\n"
                    "     processes: [{pid: 4242, memory_used: 60GiB, name: python}]}\n")
    res = run_cli("gpus", "--simulate", str(path), env={"COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Planning mode" in out and "Host:" in out
    assert "H100 80GB HBM3" in out and "60.0/79.6" in out and "4242 python" in out
    assert "99%" in out
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize("name", ["[/]", "a[x]b", "[b]ev[/b]"])
def test_a_process_name_is_shown_as_it_is_never_as_markup(run_cli, tmp_path, name):
    """Process names come from the machine: "[/]" crashed the table, "a[x]b" read "ab"."""
    path = tmp_path / "box.yaml"
    path.write_text("gpus:\n  - {preset: H100-80GB, memory_used: 1GiB,\n"
                    f"     processes: [{{pid: 4242, memory_used: 1GiB, name: '{name}'}}]}}\n")
    res = run_cli("gpus", "--simulate", str(path), env={"COLUMNS": "120"})
    assert res.returncode == 0, res.stderr
    assert f"4242 {name} 1.0 GiB" in res.stdout
    data = json.loads(run_cli("gpus", "--simulate", str(path), "--json").stdout)
    assert data[0]["processes"] == [{"pid": 4242, "memory_used": 1 << 30, "name": name}]


def test_table_says_what_cuda_visible_devices_leaves_a_run(run_cli):
    res = run_cli("gpus", "--simulate", "4xH100", env={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert "a run here sees GPU 2, 3 as cuda:0, cuda:1" in res.stdout


def test_no_gpu_and_no_simulation_is_one_line_and_exit_0(run_cli, tmp_path):
    env = fake_nvml_env(tmp_path, {"init_error": "LIBRARY_NOT_FOUND", "gpus": []})
    res = run_cli("gpus", env=env)
    assert res.returncode == 0 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "No NVIDIA driver" in res.stderr
    res = run_cli("gpus", "--json", env=env)
    assert res.returncode == 0 and json.loads(res.stdout) == []


def test_nvml_box_with_unsupported_fields_and_a_lost_gpu(run_cli, tmp_path):
    env = fake_nvml_env(tmp_path, sample_box())
    res = run_cli("gpus", "--json", env=env)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [g["index"] for g in data] == [0, 1, 2, 3]
    process = data[0]["processes"][0]
    assert {k: process[k] for k in ("pid", "memory_used")} == {"pid": 1111, "memory_used": 20 << 30}
    assert "name" in process  # what the table shows, null when NVML's pid is not readable here
    assert data[0]["power_draw"] == pytest.approx(512.345)
    assert data[1]["temperature"] is None and data[1]["utilization"] is None
    assert data[2]["error"] == "GPU is lost" and data[2]["memory_total"] is None
    assert data[3]["mig"] is True and len(data[3]["mig_devices"]) == 2
    res = run_cli("gpus", env=env | {"COLUMNS": "100"})
    assert res.returncode == 0, res.stderr
    assert "driver 550.54.15" in res.stdout and "CUDA 12.4" in res.stdout
    assert "GPU is lost" in res.stdout and "N/A" in res.stdout and "[MIG]" in res.stdout
    assert re.search(r"GPU is lost +unknown ", res.stdout)  # its memory: unknown, as every size
    assert "NVLINK" in res.stdout


def test_watch_json_prints_one_list_per_refresh(run_cli):
    res = run_cli("gpus", "--simulate", "2xL4", "--watch", "--json", "--count", "3",
                  "--interval", "0.05")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3 and all(len(json.loads(line)) == 2 for line in lines)


def test_watch_table_refreshes_until_count(run_cli):
    res = run_cli("gpus", "--simulate", "2xL4", "--watch", "--count", "2", "--interval", "0.05")
    assert res.returncode == 0, res.stderr
    assert "updated" in res.stdout and "L4" in res.stdout


def test_watch_with_no_gpu_does_not_spin(run_cli, tmp_path):
    env = fake_nvml_env(tmp_path, {"init_error": "DRIVER_NOT_LOADED", "gpus": []})
    res = run_cli("gpus", "--watch", env=env, timeout=30)
    assert res.returncode == 0 and "driver is not loaded" in res.stderr


@pytest.mark.parametrize("args", [["--interval", "0"], ["--count", "0"]])
def test_bad_watch_options(run_cli, args):
    res = run_cli("gpus", "--simulate", "2xL4", "--watch", *args)
    assert res.returncode == 2 and res.stderr.startswith("trainwiz: --")


def test_watch_on_a_terminal_redraws_in_place_and_stops_on_ctrl_c(isolated_env, tmp_path):
    import sys

    import pexpect

    env = dict(isolated_env, TERM="xterm-256color", COLUMNS="80", LINES="24")
    child = pexpect.spawn(sys.executable, ["-m", "trainwiz", "gpus", "--simulate", "2xL4",
                                           "--watch", "--interval", "0.1"],
                          env=env, cwd=str(tmp_path), dimensions=(24, 80), encoding="utf-8",
                          timeout=30)
    child.expect("updated")
    child.expect("updated")  # a second frame...
    child.expect("\x1b\\[1A|\x1b\\[2K")  # ...drawn over the first (cursor up / erase line)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_box_file_name_with_an_escape_sequence_is_refused(run_cli, tmp_path):
    """'\\x1b[2J' in a process name cleared the screen the table was printed on."""
    path = tmp_path / "box.yaml"
    path.write_text('gpus:\n  - {preset: H100-80GB,\n     processes: [{pid: 1, name: "ev\\x1b[2Jil"}]}\n')
    res = run_cli("gpus", "--simulate", str(path))
    assert res.returncode == 2 and "\x1b" not in res.stdout + res.stderr
    assert ("box.yaml:3: key 'gpus[0].processes[0].name' has a control character (\\x1b)"
            in res.stderr)
