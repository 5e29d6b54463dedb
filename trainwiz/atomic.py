"""The one way trainwiz writes a file: atomically, so a reader (or a crash) sees the old file or
the new one, never half of either.

A temporary file ``.NAME.<random>.tmp`` is written in the target's folder, flushed and fsynced,
then renamed over the target (or hard-linked to it when an existing file must not be replaced).
A process killed inside that window leaves only the hidden temporary file; :func:`sweep_stale`
removes such leftovers once they are old enough that no writer can still own them.

Standard library only: every layer may use it.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from pathlib import Path

TMP_SUFFIX = ".tmp"
STALE_AFTER_S = 3600.0


class TargetExistsError(FileExistsError):
    """``write_atomic(..., replace=False)`` found the target already there."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.EEXIST, "file exists", str(path))
        self.path = Path(path)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError means the file system has no room (or no quota) left."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_atomic(path: Path | str, data: str | bytes, *, replace: bool = True,
                 fsync: bool = True, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    ``replace=False`` never replaces an existing file: :class:`TargetExistsError`, even when the
    name appears while writing (``os.link`` fails rather than overwrite). ``fsync`` makes the new
    contents durable before they become visible (profiles); the run's status, rewritten every few
    seconds, passes ``fsync=False``. The parent folder must exist. On any error (a full disk
    included) the target is untouched and the temporary file removed.
    """
    path = Path(path)
    if not replace and path.exists():
        raise TargetExistsError(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # the temporary name stays under 255 bytes even for a target name near that limit
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.", suffix=TMP_SUFFIX)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(raw)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name appeared meanwhile: nothing is lost
            except FileExistsError:
                raise TargetExistsError(path) from None
            except OSError as exc:
                if is_disk_full(exc):
                    raise
                if path.exists():  # file systems without hard links
                    raise TargetExistsError(path) from None
                os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    if fsync:
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
    return path


def write_json_atomic(path: Path | str, data, *, fsync: bool = False) -> Path:
    """``data`` as indented JSON, written with :func:`write_atomic`."""
    return write_atomic(path, json.dumps(data, indent=1) + "\n", fsync=fsync)


def sweep_stale(folder: Path | str, *, older_than: float = STALE_AFTER_S) -> list[Path]:
    """Remove ``.NAME.*.tmp`` files that a killed writer left in ``folder`` more than
    ``older_than`` seconds ago. Returns what was removed; never raises."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed
