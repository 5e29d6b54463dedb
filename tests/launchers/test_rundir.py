"""The run store: ids, prefixes, samples bound, status files."""

from __future__ import annotations

import pytest

from trainwiz.errors import TrainwizError
from trainwiz.launchers.rundir import (
    RunStatus,
    append_sample,
    create_run_dir,
    list_runs,
    read_samples,
    read_status,
    resolve_run,
    save_status,
)


def _run(run_id: str, started: str, state: str = "succeeded"):
    d = create_run_dir(run_id)
    save_status(d, RunStatus(id=run_id, state=state, started_at=started, run_dir=str(d)))
    return d


def test_runs_newest_first_and_resolved_by_prefix(isolated_env):
    a = _run("20260101-000000-aaaa", "2026-01-01T00:00:00+00:00")
    b = _run("20260102-000000-bbbb", "2026-01-02T00:00:00+00:00")
    _run("20260102-000000-bbbc", "2026-01-02T00:00:00+00:00", state="failed")
    assert [r.id for r in list_runs()][-1] == "20260101-000000-aaaa"
    assert resolve_run("20260101") == a
    assert resolve_run("20260102-000000-bbbb") == b
    assert resolve_run("last").name.startswith("20260102")
    with pytest.raises(TrainwizError, match="ambiguous"):
        resolve_run("20260102")
    with pytest.raises(TrainwizError, match="no run"):
        resolve_run("1999")


def test_unfinished_run_without_supervisor_reads_as_failed(isolated_env):
    d = create_run_dir("20260103-000000-cccc")
    save_status(d, RunStatus(id=d.name, state="running", supervisor_pid=2 ** 22 + 7, run_dir=str(d)))
    st = read_status(d)
    assert st.state == "failed" and "supervisor" in st.failure.message


def test_samples_are_bounded_and_keep_the_newest(isolated_env):
    d = create_run_dir("20260104-000000-dddd")
    for i in range(50):
        append_sample(d, {"t": i, "gpus": [{"index": 0, "memory_used": 10 ** 9 + i}],
                          "ranks": [{"rank": 0, "pid": 1, "rss": 12345678}]}, max_samples=10)
    samples = read_samples(d)
    assert 10 <= len(samples) <= 20
    assert samples[-1]["t"] == 49
    assert [s["t"] for s in read_samples(d, last=3)] == [47, 48, 49]
