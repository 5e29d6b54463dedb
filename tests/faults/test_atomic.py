"""The one atomic-write helper every file trainwiz writes goes through."""

from __future__ import annotations

import errno
import os

import pytest

from trainwiz.atomic import TargetExistsError, sweep_stale, write_atomic


def test_never_replaces_when_told_not_to_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "p.yaml"
    target.write_text("mine")
    with pytest.raises(TargetExistsError):
        write_atomic(target, "theirs", replace=False)
    assert target.read_text() == "mine"
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["p.yaml"]


def test_a_name_near_the_limit_still_gets_a_temporary_twin(tmp_path):
    target = tmp_path / ("n" * 250)
    write_atomic(target, "x")
    assert target.read_text() == "x"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "status.json"
    target.write_text("old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["status.json"]


def test_sweep_removes_only_old_hidden_temporary_files(tmp_path):
    old, fresh, other = (tmp_path / ".a.yaml.x1.tmp", tmp_path / ".a.yaml.x2.tmp",
                         tmp_path / "notes.tmp")
    for p in (old, fresh, other):
        p.write_text("")
    os.utime(old, (1, 1))
    os.utime(other, (1, 1))
    assert sweep_stale(tmp_path) == [old]
    assert fresh.exists() and other.exists()
