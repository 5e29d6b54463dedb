"""Reading torchrun's failure report and rank logs (pure text; torch only builds the input)."""

from __future__ import annotations

import json

from tests.launchers.helpers import launched_dir, wait_state, write_profile
from trainwiz.text import printable
from trainwiz.launchers.failures import (
    failure_summary,
    is_oom,
    message_from_log,
    parse_failure_table,
    read_error_file,
)
from trainwiz.launchers.records import Failure


def test_parses_torchrun_child_failed_report(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    err = tmp_path / "error.json"
    err.write_text(json.dumps({"message": {"message": "RuntimeError: boom", "extraInfo": {
        "py_callstack": "Traceback ...\nRuntimeError: boom", "timestamp": "1700000000"}}}))
    failures = {
        0: ProcessFailure(local_rank=0, pid=111, exitcode=-15, error_file=str(tmp_path / "none")),
        3: ProcessFailure(local_rank=1, pid=222, exitcode=1, error_file=str(err)),
    }
    text = "noise\n" + str(ChildFailedError("train.py", failures)) + "\n"
    entries = {e.rank: e for e in parse_failure_table(text)}
    assert set(entries) == {0, 3}
    assert (entries[3].exit_code, entries[3].pid, entries[3].local_rank) == (1, 222, 1)
    assert entries[3].error_file == str(err) and entries[3].root
    assert entries[0].exit_code == -15 and entries[0].error_file is None
    assert read_error_file(entries[3].error_file)[0] == "RuntimeError: boom"


def test_message_and_oom_from_a_log_tail():
    tail = ["[rank1]: Traceback (most recent call last):",
            '[rank1]:   File "t.py", line 3, in <module>',
            "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "W1127 agent noise"]
    msg = message_from_log(tail)
    assert msg.startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert is_oom(msg) and not is_oom("RuntimeError: boom")
    assert message_from_log(["", "just a line", "*" * 40, ""]) == "just a line"


def test_an_interpreter_crash_is_named_not_its_module_list():
    tail = ["rank 0 done", "terminate called without an active exception",
            "Fatal Python error: Aborted", "", "Thread 0x00007f (most recent call first):",
            '  File "train.py", line 9 in <module>',
            "Extension modules: numpy._core._multiarray_umath, torch._C (total: 22)"]
    assert message_from_log(tail) == "Fatal Python error: Aborted"


def test_a_failure_message_never_carries_terminal_control_characters():
    """A rank that raised RuntimeError("... \\x1b[2J") blanked the screen showing its failure:
    the summary keeps the words (and the brackets) and drops escape sequences whole."""
    message = "RuntimeError: [/] [bold]boom[/bold] ünï \x1b[2J\x1b]0;pwned\x07\tend\x00\x9b1m"
    line = failure_summary(Failure(rank=1, exit_code=1, oom=False, message=message))
    assert line == "rank 1: RuntimeError: [/] [bold]boom[/bold] ünï end (exit code 1)"
    assert printable("step 3 \x1b[32mloss\x1b[0m 2.1\r") == "step 3 loss 2.1 "
    assert printable("plain [x] ünï") == "plain [x] ünï"
    assert printable("abc\u202edef") == "abcdef"  # a bidi override would reverse what follows


def test_a_real_rank_raising_escape_codes_is_reported_without_them(run_cli, tmp_path):
    """A real run: rank 1 raises RuntimeError("[/] [bold]boom[/bold] ünï \\x1b[2J"). `runs`
    and `runs show` say the words, brackets and all, and write no escape to the terminal."""
    script = tmp_path / "boom.py"
    script.write_text("import os, time\n"
                      "if os.environ.get('RANK') == '1':\n"
                      "    raise RuntimeError('[/] [bold]boom[/bold] \\u00fcn\\u00ef \\x1b[2J')\n"
                      "time.sleep(2)\n")
    prof = write_profile(tmp_path)
    out = run_cli("launch", "--detach", "--profile", str(prof), str(script))
    assert out.returncode == 0, out.stderr
    st = wait_state(launched_dir(out.stdout), ("failed", "succeeded"))
    assert st["state"] == "failed" and "\x1b[2J" in st["failure"]["message"]  # as recorded
    for cmd in (("runs",), ("runs", "show", st["id"])):
        shown = run_cli(*cmd)
        assert shown.returncode == 0, shown.stderr
        assert "rank 1: RuntimeError: [/] [bold]boom[/bold] ünï" in " ".join(shown.stdout.split())
        assert "\x1b" not in shown.stdout
