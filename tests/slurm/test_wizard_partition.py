"""The wizard plans for a Slurm partition's nodes, read from the real test cluster's sinfo, and
saves a profile that submits there."""

from __future__ import annotations

import pytest

from tests.tui.conftest import make_app, wait_for  # noqa: F401 (make_app: the fixture)
from trainwiz.profiles import load_profile
from trainwiz.tui.screens.wizard import PARTITION

pytestmark = [pytest.mark.xdist_group("slurm"), pytest.mark.slow]


async def test_plan_for_a_partition_and_save_a_slurm_profile(slurm_cluster, make_app,
                                                             isolated_env, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.set_focus(None)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.current_mode == "wizard")
        wizard = app.screen
        await wait_for(pilot, lambda: "debug" in wizard.partitions, timeout=20)
        part = wizard.partitions["debug"]
        assert part.gpus_per_node == 2 and part.gpu_type == "h100"
        wizard.set_model("llama-3.2-1b")
        await wait_for(pilot, lambda: wizard.result is not None)
        wizard.query_one("#plan-for").value = PARTITION + "debug"
        await wait_for(pilot, lambda: wizard.plan.scheduler == "slurm")
        wizard.query_one("#machines").value = 2  # both nodes of the partition
        await wait_for(pilot, lambda: wizard.plan.machines == 2 and wizard.result is not None)
        assert wizard.config.num_gpus == 4
        assert {g.memory_total for g in wizard.plan.box.gpus} == {81559 * 2**20}
        wizard._save("on-debug")
        await pilot.pause()
    profile = load_profile("on-debug")
    assert profile.scheduler == "slurm"
    assert profile.slurm.partition == "debug" and profile.slurm.nodes == 2
    assert profile.num_processes == 2
