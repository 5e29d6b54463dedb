"""Time to first frame of the app, measured in a real pseudo-terminal.

    python -m benchmarks.tui [--runs 5] [--simulate 8xH100-80GB]

Starts ``python -m trainwiz`` in an 80x24 pty (pexpect) and times, from process start:
the first frame (the header is drawn), and the GPU dashboard filled in (the first GPU card),
then quits with Ctrl+Q. A bare three-widget Textual app is timed the same way, interleaved,
as the floor on this machine. Also reports whether the app process imported torch (it must
not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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


def _one(simulate: str | None) -> tuple[float, float]:
    """(first frame, first GPU card) in seconds; ``simulate`` None runs the bare app."""
    import pexpect

    env = dict(os.environ, TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    args = ["-c", BARE_APP] if simulate is None else ["-m", "trainwiz", "--simulate", simulate]
    start = time.perf_counter()
    child = pexpect.spawn(sys.executable, args, env=env, dimensions=(24, 80), timeout=30)
    try:
        child.expect("trainwiz")
        first = time.perf_counter() - start
        child.expect("GPU 0")
        filled = time.perf_counter() - start
        child.sendcontrol("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
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
