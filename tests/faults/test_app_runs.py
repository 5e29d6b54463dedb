"""The app's Runs screen with damaged and forged run folders: one row each, never an empty
list or a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tui.conftest import make_app, text_of, wait_for  # noqa: F401 - make_app: a fixture


async def test_the_runs_screen_lists_damaged_runs_beside_good_ones(make_app, isolated_env):
    root = Path(isolated_env["XDG_STATE_HOME"]) / "trainwiz" / "runs"
    good = "20260101-000000-good"
    (root / good).mkdir(parents=True)
    (root / good / "status.json").write_text(json.dumps({
        "id": good, "state": "failed", "profile": "p",
        "failure": {"rank": None, "exit_code": 1, "message": "[launcher] gave up"}}))
    for run_id, text in (("20260102-000000-nul0", "null"), ("20260103-000000-lst0", "[]"),
                         ("20260104-000000-typ0", json.dumps({"id": "20260104-000000-typ0",
                                                              "ranks": "[bold]"}))):
        (root / run_id).mkdir()
        (root / run_id / "status.json").write_text(text)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: len(getattr(app.screen, "runs", [])) == 4)
        table = app.screen.query_one("DataTable")
        rows = [" ".join(str(getattr(c, "plain", c)) for c in table.get_row_at(i))
                for i in range(table.row_count)]
        assert len(rows) == 4
        assert sum("damaged" in r for r in rows) == 3
        assert "launcher: [launcher] gave up" in rows[3]  # not "rank None"
        assert "field 'ranks' must be a list" in rows[0]
        assert "cannot list runs" not in text_of(app.screen.query_one("#runs-status"))
