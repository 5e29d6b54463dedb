"""The hardware layer stays light: no pynvml until NVML is probed, never torch or textual."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def loaded_after(code: str) -> set[str]:
    script = (f"import json, sys\n{code}\n"
              "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code, forbidden", [
    ("import trainwiz.hardware", {"pynvml", "torch", "textual", "psutil", "yaml"}),
    ("from trainwiz.hardware import detect, GpuSampler, parse_simulate, visible_gpus, host_info\n"
     "detect(simulate='2xH100'); GpuSampler('2xH100').sample({0: [1]})\n"
     "visible_gpus(parse_simulate('2xH100'), '1'); host_info()",
     {"pynvml", "torch", "textual"}),
    ("from trainwiz.hardware import detect; detect()", {"torch", "textual"}),
    ("import contextlib, io\nfrom trainwiz.cli import main\n"
     "with contextlib.redirect_stdout(io.StringIO()):\n"
     "    assert main(['gpus', '--simulate', '2xH100', '--json']) == 0",
     {"pynvml", "torch", "textual"}),
])
def test_imports_stay_light(code, forbidden):
    loaded = loaded_after(code)
    assert not loaded & forbidden, sorted(loaded & forbidden)
