"""The real Slurm cluster for the tests in this folder (see cluster.py).

Session-scoped, and guarded by a file lock held for the whole session: only one pytest worker
(or one pytest run on this machine) installs and runs the daemons at a time. All tests here are
in one xdist group (``pytestmark = pytest.mark.xdist_group("slurm")``) so ``pytest -n 2 --dist
loadgroup`` (the project's addopts) runs them on one worker. If installing or starting Slurm
fails, the tests fail: they are never skipped.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest

from tests.slurm import cluster

LOCK = Path(tempfile.gettempdir()) / "trainwiz-slurm-tests.lock"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running two-node cluster; ``SLURM_CONF`` is set for the session. Yields its env."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = tmp_path_factory.mktemp("slurm")
        try:
            env = cluster.start(base)
        except cluster.ClusterError as exc:
            pytest.fail(f"could not start the test Slurm cluster: {exc}", pytrace=False)
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = env["SLURM_CONF"]
        try:
            yield {**env, "base": str(base)}
        finally:
            cluster.stop(base)
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
