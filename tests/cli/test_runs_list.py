"""``trainwiz runs``: a run launched on simulated GPUs says so in the table and in ``--json``,
as ``runs show`` does (a simulated number is labelled simulated)."""

from __future__ import annotations

import json

from tests.cli.test_presentation import forge


def test_runs_labels_a_run_on_simulated_gpus(run_cli, isolated_env):
    state = isolated_env["XDG_STATE_HOME"]
    forge(state, "20260101-120000-real", profile="real", device="cuda")
    forge(state, "20260101-130000-simu", profile="simu", device="cuda", simulate="2xH100-80GB")
    forge(state, "20260101-140000-cpu0", profile="cpu", device="cpu", simulate="2xH100-80GB")
    for columns in ("80", "120"):
        res = run_cli("runs", env={"COLUMNS": columns})
        assert res.returncode == 0, res.stderr
        rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:4]}
        assert rows["20260101-130000-simu"].rstrip().endswith("2 sim"), res.stdout
        # real GPUs, and CPU ranks (their host memory is measured whatever box was simulated)
        assert rows["20260101-120000-real"].rstrip().endswith(" 2")
        assert rows["20260101-140000-cpu0"].rstrip().endswith(" 2")
        assert "sim: on simulated GPUs" in res.stdout
        assert all(len(line) <= int(columns) for line in res.stdout.splitlines())
    shown = run_cli("runs", "show", "20260101-130000-simu").stdout
    assert "(simulated 2xH100-80GB)" in shown.splitlines()[0]
    listed = {r["id"]: r for r in json.loads(run_cli("runs", "--json").stdout)}
    assert listed["20260101-130000-simu"]["simulate"] == "2xH100-80GB"
    assert listed["20260101-120000-real"]["simulate"] is None

