"""Runs one training rank's script, keeping its output in order and its life independent of the
disk. Started by torchrun (or accelerate) in the training environment's interpreter as

    python -u rank_entry.py [-m] SCRIPT|MODULE [ARGS...]

so it must be standalone: the standard library only, nothing from trainwiz (the training
environment need not have trainwiz installed). It

* runs the script in this very process (``runpy``: same pid, same ``RANK``, same exit code and
  traceback as ``python SCRIPT``);
* replaces ``sys.stdout`` and ``sys.stderr`` by writers that pass everything on to the files
  torchrun opened (``stdout.log`` / ``stderr.log``) and also append it, in the order written, to
  ``output.log`` beside them: ``print`` and ``logging``/``warnings``/``tqdm`` lines interleave as
  they happened (``trainwiz logs`` and the monitor read that file);
* never lets a full disk end the rank: a write that fails for lack of space is dropped and
  counted, and a note of what was lost is written once there is room again.
"""

import errno
import io
import os
import runpy
import sys

_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _Sink:
    """A file descriptor that swallows 'no space' errors, counting what it lost."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lost = 0

    def write(self, data: bytes) -> None:
        if self.fd is None:
            return
        if self.lost:
            note = f"\n[trainwiz: {self.lost} bytes of output were lost: disk full]\n".encode()
            if not self._write(note):
                self.lost += len(data)
                return
            self.lost = 0
        if not self._write(data):
            self.lost += len(data)

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                return False
            if exc.errno in (errno.EBADF, errno.EPIPE):
                self.fd = None
                return True
            raise
        return True


class _Stream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr``: text to its own file and to the shared, ordered log."""

    def __init__(self, own: _Sink, shared: _Sink | None, fd: int, name: str) -> None:
        super().__init__()
        self._own, self._shared, self._fd, self._name = own, shared, fd, name
        self._buffer = None

    @property
    def encoding(self) -> str:
        return "utf-8"

    @property
    def errors(self) -> str:
        return "backslashreplace"

    @property
    def name(self) -> str:
        return self._name

    @property
    def buffer(self):  # bytes written here go to this stream's file only
        if self._buffer is None:
            self._buffer = io.FileIO(self._fd, "wb", closefd=False)
        return self._buffer

    @property
    def mode(self) -> str:
        return "w"

    @property
    def line_buffering(self) -> bool:
        return True

    def reconfigure(self, **kwargs) -> None:
        """Accepted and ignored: every write already goes straight to the files."""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        data = text.encode("utf-8", "backslashreplace")
        self._own.write(data)
        if self._shared is not None:
            self._shared.write(data)
        return len(text)

    def flush(self) -> None:
        pass


def _shared_log() -> _Sink | None:
    """``output.log`` beside the file torchrun gave this rank as stdout (None without one)."""
    try:
        target = os.readlink("/proc/self/fd/1")
    except OSError:
        return None
    if not target.endswith("stdout.log") or not os.path.isabs(target):
        return None
    try:
        fd = os.open(os.path.join(os.path.dirname(target), "output.log"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return None
    return _Sink(fd)


def main() -> None:
    argv = sys.argv[1:]
    module = bool(argv) and argv[0] == "-m"
    if module:
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: rank_entry.py [-m] SCRIPT|MODULE [ARGS...]\n")
        raise SystemExit(2)
    shared = _shared_log()
    sys.stdout = _Stream(_Sink(1), shared, 1, "<stdout>")
    sys.stderr = _Stream(_Sink(2), shared, 2, "<stderr>")
    target, rest = argv[0], argv[1:]
    if module:
        sys.argv = [target, *rest]
        sys.path[0] = os.getcwd()
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *rest]
        sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    # This folder must not shadow the script's imports: it leaves sys.path before anything runs.
    sys.path[0] = os.getcwd()
    main()
