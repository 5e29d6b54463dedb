"""Naming a run's failure from what was observed (pure: plain data in, the failure a user reads
out). The tables are torchrun's own report text, as its launcher.log holds it."""

from __future__ import annotations

from trainwiz.launchers.failures import parse_failure_table
from trainwiz.launchers.outcome import Observed, RankEvidence, exit_codes, name_failure

LINE = "-" * 60


def report(root: dict, *others: dict) -> list[str]:
    """torchrun's ChildFailedError report (launcher.log lines): ``others`` under Failures, the
    first observed failure under Root Cause. Each dict: rank, local, code, pid, file, tb."""
    def entry(i: int, e: dict) -> str:
        signame = {-11: "  (SIGSEGV)", -15: "  (SIGTERM)", -9: "  (SIGKILL)"}.get(e["code"], "")
        return (f"[{i}]:\n  time      : 2026-12-01_19:29:46\n  host      : node1\n"
                f"  rank      : {e['rank']} (local_rank: {e.get('local', e['rank'])})\n"
                f"  exitcode  : {e['code']} (pid: {e.get('pid', 1000 + e['rank'])}){signame}\n"
                f"  error_file: {e.get('file', '<N/A>')}\n"
                f"  traceback : {e.get('tb', 'To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html')}")
    text = "\n".join([
        "W1201 19:29:40 elastic/multiprocessing/api.py:900] Sending process 1000 closing signal 15",
        "Traceback (most recent call last):",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", "=" * 60,
        "train.py FAILED", LINE, "Failures:",
        *([entry(i + 1, e) for i, e in enumerate(others)] or ["  <NO_OTHER_FAILURES>"]),
        LINE, "Root Cause (first observed failure):", entry(0, root), "=" * 60])
    return text.splitlines()


def observed(rc: int, log: list[str], **ranks: RankEvidence) -> Observed:
    return Observed(launcher_exit_code=rc, launcher_log=log,
                    table=parse_failure_table("\n".join(log)),
                    ranks={int(k.removeprefix("r")): v for k, v in ranks.items()},
                    launcher="/usr/bin/python3")


# A peer the agent ended: no error file, no crash; its stderr was last written long before (a
# warning at start-up), and it was seen gone at the same poll as the rank that failed.
SIGTERMED = RankEvidence(stderr_at=50.0, exited_at=101.0,
                         stderr_tail=["UserWarning: TypedStorage is deprecated"])


def test_oom_on_rank_1_is_named_not_the_rank_the_agent_ended():
    log = report({"rank": 0, "code": -15},
                 {"rank": 1, "code": 1, "file": "/run/torchrun/x/attempt_0/1/error.json",
                  "tb": "Traceback (most recent call last):\n    ...\n"
                        "  torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"})
    oom = RankEvidence(error_message="torch.OutOfMemoryError: CUDA out of memory. Tried to "
                                     "allocate 2.00 GiB (simulated on rank 1)",
                       error_file_at=100.0, stderr_at=100.5, exited_at=101.0)
    failure = name_failure(observed(1, log, r0=SIGTERMED, r1=oom))
    assert (failure.rank, failure.exit_code, failure.oom) == (1, 1, True)
    assert failure.message == ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                               "2.00 GiB (simulated on rank 1)")


def test_oom_seen_only_earlier_in_the_ranks_stderr_still_says_oom():
    # the script re-raised the OOM as its own error: the message is the last exception, the
    # OOM is further up the same traceback
    log = report({"rank": 0, "code": -15}, {"rank": 1, "code": 1})
    tail = ["[rank1]: Traceback (most recent call last):",
            "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB",
            "[rank1]: The above exception was the direct cause of the following exception:",
            "[rank1]:   File \"train.py\", line 40, in <module>",
            "[rank1]: RuntimeError: training step 8 failed",
            "W1201 agent noise after the traceback"]
    failure = name_failure(observed(1, log, r0=SIGTERMED,
                                    r1=RankEvidence(stderr_at=100.0, stderr_tail=tail,
                                                    exited_at=101.0)))
    assert (failure.rank, failure.exit_code, failure.oom) == (1, 1, True)
    assert failure.message == "RuntimeError: training step 8 failed"


def test_a_segfault_names_the_signal_and_the_crash_line():
    log = report({"rank": 1, "code": -11, "tb": "Signal 11 (SIGSEGV) received by PID 1001"},
                 {"rank": 0, "code": -15})
    crash = RankEvidence(stderr_at=100.0, exited_at=100.2, stderr_tail=[
        "Fatal Python error: Segmentation fault", "",
        "Current thread 0x00007f (most recent call first):", '  File "kernel.py", line 3 in launch',
        "Extension modules: numpy._core._multiarray_umath, torch._C (total: 22)"])
    failure = name_failure(observed(1, log, r0=SIGTERMED, r1=crash))
    assert (failure.rank, failure.exit_code, failure.oom) == (1, -11, False)
    assert failure.message == "Fatal Python error: Segmentation fault"

    silent = RankEvidence(exited_at=100.2)  # the rank's stderr said nothing
    failure = name_failure(observed(1, log, r0=SIGTERMED, r1=silent))
    assert (failure.rank, failure.message) == (1, "killed by SIGSEGV")


def test_torchruns_agent_killed_is_a_launcher_failure_without_a_rank():
    log = ["W1201 starting 2 workers", "rank 0 step 3 loss 1.2"]  # no report: it had no time
    failure = name_failure(observed(-9, log))
    assert (failure.rank, failure.exit_code, failure.oom) == (None, -9, False)
    assert failure.message == ("the launcher was killed by SIGKILL (by a user, or by the kernel "
                               "when the host ran out of memory)")
    assert name_failure(observed(-15, log)).message == "the launcher was killed by SIGTERM"


def test_a_rank_exiting_1_with_a_python_traceback_and_no_error_file():
    log = report({"rank": 0, "code": 1}, {"rank": 1, "code": -15})
    tail = ["rank 0 step 7 loss 0.93", "Traceback (most recent call last):",
            '  File "train.py", line 88, in <module>', "    batch = next(it)",
            "ValueError: batch 8 has 0 samples", ""]
    failure = name_failure(observed(1, log, r0=RankEvidence(stderr_at=100.0, stderr_tail=tail),
                                    r1=SIGTERMED))
    assert (failure.rank, failure.exit_code, failure.oom) == (0, 1, False)
    assert failure.message == "ValueError: batch 8 has 0 samples"


def test_no_error_file_and_nothing_on_stderr_gives_the_exit_code():
    log = report({"rank": 1, "code": 3})
    failure = name_failure(observed(1, log, r1=RankEvidence()))
    assert (failure.rank, failure.exit_code, failure.message) == (1, 3, "exited with code 3")
    # no evidence gathered at all (the rank's folder is gone): the same
    assert name_failure(observed(1, log)).message == "exited with code 3"


def test_the_rank_that_failed_first_is_named_not_the_peer_that_lost_it():
    # rank 1 raised first; rank 0 then failed on the closed connection (torchrun's root cause is
    # whichever it noticed first, here rank 0)
    log = report({"rank": 0, "code": 1, "file": "/e0"}, {"rank": 1, "code": 1, "file": "/e1"})
    failure = name_failure(observed(
        1, log,
        r0=RankEvidence(error_message="RuntimeError: Connection closed by peer",
                        error_file_at=104.0, exited_at=105.0),
        r1=RankEvidence(error_message="FloatingPointError: loss is NaN at step 12",
                        error_file_at=100.0, exited_at=105.0)))  # both seen gone at one poll
    assert (failure.rank, failure.message) == (1, "FloatingPointError: loss is NaN at step 12")

    # without error files (no @record), when each rank's stderr was written decides
    log = report({"rank": 0, "code": 1}, {"rank": 1, "code": 1})
    failure = name_failure(observed(
        1, log,
        r0=RankEvidence(stderr_at=102.0, exited_at=103.0,
                        stderr_tail=["RuntimeError: Connection reset by peer"]),
        r1=RankEvidence(stderr_at=100.0, exited_at=103.0,
                        stderr_tail=["AssertionError: labels out of range"])))
    assert (failure.rank, failure.message) == (1, "AssertionError: labels out of range")


def test_the_tables_traceback_is_read_when_no_error_file_was_found():
    log = report({"rank": 0, "code": 1, "file": "/gone/error.json",
                  "tb": "Traceback (most recent call last):\n    ...\n  KeyError: 'labels'"})
    failure = name_failure(observed(1, log, r0=RankEvidence(exited_at=100.0)))
    assert (failure.rank, failure.message) == (0, "KeyError: 'labels'")


def test_the_launcher_failing_on_its_own_names_its_error():
    log = ["Traceback (most recent call last):", '  File "run.py", line 9, in <module>',
           ("torch.distributed.DistNetworkError: The server socket has failed to listen on any "
            "local network address. port: 29500, useIpv6: False, code: -98, name: EADDRINUSE"),
           ""]
    failure = name_failure(observed(1, log))
    assert (failure.rank, failure.exit_code) == (None, 1)
    assert failure.message.startswith("torch.distributed.DistNetworkError: The server socket")
    assert name_failure(observed(2, [])).message == "launcher exited with code 2"


def test_exit_0_is_success_unless_no_rank_ever_started():
    assert name_failure(observed(0, ["all done"])) is None
    never = Observed(launcher_exit_code=0, rank_started=False, launcher="/opt/fake/python")
    failure = name_failure(never)
    assert (failure.rank, failure.exit_code) == (None, 0)
    assert "no rank ever started" in failure.message and "'/opt/fake/python'" in failure.message


def test_ranks_torchrun_does_not_list_exited_0():
    table = parse_failure_table("\n".join(report({"rank": 2, "code": 1}, {"rank": 3, "code": -15})))
    assert exit_codes(table, [0, 1, 2, 3]) == {0: 0, 1: 0, 2: 1, 3: -15}
