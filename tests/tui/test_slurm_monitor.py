"""The monitor of a Slurm run shows every node's GPUs (each node's supervisor samples its own
into the shared run directory) and names a failing rank's node."""

from __future__ import annotations

import json

from tests.tui.conftest import text_of, wait_for
from trainwiz.tui.monitor_app import MonitorApp


def fake_slurm_run(root):
    """A finished two-node Slurm run as the node supervisors leave it (no Slurm needed: the
    job's last state is kept in slurm.json)."""
    run = root / "20260101-000000-abcd"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"id": run.name, "scheduler": "slurm",
                                                 "profile": "p", "device": "cuda",
                                                 "num_processes": 2, "num_machines": 2}))
    (run / "slurm.json").write_text(json.dumps({"job_id": "9", "nodes": ["gpu-a", "gpu-b"],
                                                "last": {"state": "FAILED", "reason": None,
                                                         "nodelist": "gpu-[a-b]",
                                                         "exit_code": "1:0",
                                                         "source": "scontrol"}}))
    for nid, node in enumerate(("gpu-a", "gpu-b")):
        d = run / "nodes" / f"{node}-{run.name}"
        d.mkdir(parents=True)
        (d / "command.json").write_text(json.dumps({"node": node, "node_id": nid}))
        failure = {"rank": 3, "exit_code": 1, "message": "ValueError: bad batch [red]"} \
            if nid else None
        (d / "status.json").write_text(json.dumps({
            "id": d.name, "state": "failed" if nid else "stopped",
            "ranks": [{"rank": 2 * nid, "exit_code": 1}, {"rank": 2 * nid + 1, "exit_code": 1}],
            "failure": failure}))
        lines = [json.dumps({"t": 100.0 + k, "ranks": [],
                             "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3",
                                       "memory_used": (10 + k + nid) * 2**30,
                                       "memory_total": 80 * 2**30} for i in range(2)]})
                 for k in range(3)]
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return run


async def test_monitor_shows_every_nodes_gpus_and_the_failing_ranks_node(tmp_path):
    run = fake_slurm_run(tmp_path)
    app = MonitorApp(run)
    async with app.run_test(size=(100, 40)) as pilot:
        table = app.screen.query_one("#rank-table")
        await wait_for(pilot, lambda: table.row_count == 4 and app.screen.samples)
        gpu = [str(c.label) for c in table.ordered_columns].index("GPU")
        assert [str(table.get_row_at(i)[gpu]) for i in range(4)] == ["0", "1", "2", "3"]
        gpus = {g["index"] for s in app.screen.samples for g in s["gpus"]}
        assert gpus == {0, 1, 2, 3}  # every node's GPUs, numbered over the job
        failure = text_of(app.screen.query_one("#run-failure"))
        assert "rank 3 on gpu-b: " in failure and "bad batch [red]" in failure
        assert "(exit code 1)" in failure
