"""Time to first frame of the app, measured in a real pseudo-terminal.

    python -m benchmarks.tui [--runs 5] [--simulate 8xH100-80GB]

Starts ``python -m trainwiz`` in an 80x24 pseudo-terminal (the standard library's ``pty``;
no extra package needed) and times, from process start:
the first frame (the header is drawn), and the GPU dashboard filled in (the first GPU card),
then quits with Ctrl+Q. A bare three-widget Textual app is timed the same way, interleaved,
as the floor on this machine. Also reports whether the app process imported torch (it must
not).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import termios
import time


BARE_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Footer, Header, Static\n"
    "class Bare(App):\n"
    "    TITLE = 'trainwiz'\n"
    "    def compose(self):\n"
    "        yield Header(); yield Static('GPU 0'); yield Footer()\n"
    "Bare().run()\n"
)


def _spawn(args: list[str], env: dict) -> tuple[int, int]:
    """Start ``python ARGS`` on a new 80x24 pseudo-terminal (the standard library's ``pty``):
    (pid, the terminal's file descriptor)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin is the terminal; give it a size, then become python
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.execve(sys.executable, [sys.executable, *args], env)
    return pid, fd


def _expect(fd: int, text: str, seen: bytearray, timeout: float = 30.0) -> None:
    """Read the terminal until ``text`` has been drawn."""
    deadline = time.monotonic() + timeout
    want = text.encode()
    while want not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{text!r} not drawn within {timeout:.0f} s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                raise TimeoutError(f"the app ended before drawing {text!r}") from None


def _one(simulate: str | None) -> tuple[float, float]:
    """(first frame, first GPU card) in seconds; ``simulate`` None runs the bare app."""
    env = dict(os.environ, TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    args = ["-c", BARE_APP] if simulate is None else ["-m", "trainwiz", "--simulate", simulate]
    start = time.perf_counter()
    pid, fd = _spawn(args, env)
    seen = bytearray()
    try:
        _expect(fd, "trainwiz", seen)
        first = time.perf_counter() - start
        _expect(fd, "GPU 0", seen)
        filled = time.perf_counter() - start
        os.write(fd, b"\x11")  # Ctrl+Q
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    return first, filled


def _imports_torch() -> bool:
    """Run the app headless through every screen; did anything import torch?"""
    import subprocess

    code = (
        "import asyncio, sys\n"
        "from trainwiz.tui.app import TrainwizApp\n"
        "async def main():\n"
        "    app = TrainwizApp(simulate='2xH100-80GB', poll_interval=None)\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        for key in 'wplrg':\n"
        "            app.screen.set_focus(None)\n"
        "            await pilot.press(key)\n"
        "            await pilot.pause(0.2)\n"
        "asyncio.run(main())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--simulate", default="8xH100-80GB")
    args = parser.parse_args(argv)
    firsts, filled, bare = [], [], []
    _one(args.simulate)  # warm the file cache: the first start of a box is slower
    for _ in range(args.runs):  # interleaved, so machine load hits both alike
        a, b = _one(args.simulate)
        firsts.append(a)
        filled.append(b)
        bare.append(_one(None)[0])

    def fmt(values: list[float]) -> str:
        return (f"median {statistics.median(values) * 1000:.0f} ms "
                f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})")

    print(f"trainwiz app, {args.simulate}, 80x24 pty, {args.runs} runs "
          f"(process start to screen, Python {sys.version.split()[0]})")
    print(f"  first frame:        {fmt(firsts)}")
    print(f"  GPU card drawn:     {fmt(filled)}")
    print(f"  bare Textual app (Header, Static, Footer), for scale: {fmt(bare)}")
    print(f"  torch imported by the app: {'YES' if _imports_torch() else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
