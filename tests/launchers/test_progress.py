"""Progress from what real training scripts print (captured output in fixtures/progress/)."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from trainwiz.launchers.progress import ProgressTracker, parse_line, plan_tokens_per_step

FIXTURES = Path(__file__).parent / "fixtures" / "progress"


def _feed(tracker: ProgressTracker, name: str, t0: float = 0.0, chunk: int = 97) -> None:
    """Feed a captured log in odd-sized chunks, as the supervisor reads a growing file."""
    text = (FIXTURES / name).read_text()
    for i in range(0, len(text), chunk):
        tracker.feed_text(text[i:i + chunk], t0 + i / 1000)


def test_hf_trainer_log_dicts_and_its_tqdm_bar():
    tracker = ProgressTracker()
    # both files grow together; the supervisor reads what each has at every poll
    err = (FIXTURES / "hf_trainer.stderr.log").read_text()
    out = (FIXTURES / "hf_trainer.stdout.log").read_text()
    for i in range(10):
        tracker.feed_text(err[i * len(err) // 10:(i + 1) * len(err) // 10], float(i), "err")
        tracker.feed_text(out[i * len(out) // 10:(i + 1) * len(out) // 10], float(i), "out")
    snap = tracker.snapshot(finished=True)
    dicts = [ast.literal_eval(line) for line in
             (FIXTURES / "hf_trainer.stdout.log").read_text().splitlines() if line.startswith("{")]
    final = dicts.pop()
    assert (snap["step"], snap["total"]) == (40, 40)
    assert {"tqdm", "hf", "hf_final"} <= set(snap["formats"])
    assert snap["loss"] == pytest.approx(float(dicts[-1]["loss"]))  # the last logged loss
    assert snap["steps_per_s"] == pytest.approx(float(final["train_steps_per_second"]))
    losses = [loss for _, loss in snap["losses"]]
    assert losses == [pytest.approx(float(d["loss"])) for d in dicts] and len(losses) == 8
    steps = [step for step, _ in snap["losses"]]
    assert steps == sorted(steps) and steps[-1] <= 40


def test_hf_trainer_while_running_has_a_rate_and_time_left_from_the_bar():
    tracker = ProgressTracker()
    text = (FIXTURES / "hf_trainer.stderr.log").read_text()
    cut = text.index("20/40")
    bar = text[cut:text.index("]", cut)]  # 20/40 [00:00<00:00, 50.65it/s
    rate = float(bar.split(",")[1].strip().removesuffix("it/s"))
    tracker.feed_text(text[:cut + 40], 1.0)
    snap = tracker.snapshot(tokens_per_step=4 * 64 * 2)
    assert (snap["step"], snap["total"]) == (20, 40)
    assert snap["steps_per_s"] == pytest.approx(rate)
    mm, ss = bar.split("<")[1].split(",")[0].split(":")  # tqdm's time left, "<00:01"
    assert snap["seconds_left"] == int(mm) * 60 + int(ss)
    assert snap["tokens_per_s"] == pytest.approx(rate * 512)
    assert snap["tokens_per_s_source"] == "plan"


def test_accelerate_step_loss_lines():
    tracker = ProgressTracker()
    _feed(tracker, "accelerate.stdout.log")
    lines = (FIXTURES / "accelerate.stdout.log").read_text().splitlines()
    last = [line for line in lines if " step " in line][-1]
    step, loss = int(last.split()[3]), float(last.split()[5])
    snap = tracker.snapshot()
    assert snap["step"] == step and snap["loss"] == pytest.approx(loss)
    assert snap["total"] is None and snap["seconds_left"] is None  # nothing says the total
    assert len(snap["losses"]) == step + 1


def test_a_plain_tqdm_loop_with_a_loss_postfix_and_later_bars():
    text = (FIXTURES / "tqdm.stderr.log").read_text()
    first = text[:text.index("Epoch 0")]  # the training bar with its loss postfix
    tracker = ProgressTracker()
    tracker.feed_text(first, 0.0)
    snap = tracker.snapshot()
    assert (snap["step"], snap["total"]) == (30, 30)
    last = first.rsplit("loss=", 1)[1].split("]")[0]
    assert snap["loss"] == pytest.approx(float(last))
    steps = [step for step, _ in snap["losses"]]  # a curve: one point a step the bar showed
    assert len(steps) > 10 and steps == sorted(set(steps))
    # bars that start after it finished are the next phase, and are followed
    tracker.feed_text(text[len(first):] + "\n", 1.0)
    assert (tracker.step, tracker.total) == (3, 3)


def test_tqdm_rates_in_seconds_per_step_and_custom_units():
    slow = parse_line("slow:  33%|###3      | 1/3 [00:01<00:02,  1.10s/it]")
    assert slow.steps_per_s == pytest.approx(1 / 1.1) and slow.seconds_left == 2
    batches = parse_line("Epoch 0:  62%|######2   | 5/8 [00:00<00:00, 49.74batch/s]")
    assert (batches.step, batches.total, batches.steps_per_s) == (5, 8, pytest.approx(49.74))
    fast = parse_line(" 50%|#####     | 500/1000 [01:02<1:01:02, 1.2kit/s, loss=2.5]")
    assert fast.steps_per_s == 1200 and fast.seconds_left == 3662 and fast.loss == 2.5


def test_loading_bars_before_training_and_evaluation_bars_inside_it():
    tracker = ProgressTracker()
    for line in ["Loading checkpoint shards: 100%|##########| 4/4 [00:02<00:00,  1.9it/s]",
                 "Map: 100%|##########| 1000/1000 [00:00<00:00, 9000.00 examples/s]",
                 " 10%|#         | 10/100 [00:10<01:30,  1.00it/s]",
                 "  1%|          | 5/500 [00:01<01:39,  5.00it/s]",  # evaluation, bigger
                 " 11%|#         | 11/100 [00:11<01:29,  1.00it/s]"]:
        tracker.feed_line(line, 0.0)
    assert (tracker.step, tracker.total) == (11, 100)


def test_epoch_bars_restart_the_step_count():
    tracker = ProgressTracker()
    text = (FIXTURES / "tqdm.stderr.log").read_text()
    epochs = text[text.index("Epoch 0"):text.index("slow")]
    tracker.feed_text(epochs, 0.0)
    assert (tracker.step, tracker.total) == (8, 8)


def test_explicit_trainwiz_lines_and_metrics_records():
    tracker = ProgressTracker(window=5)
    for i in range(1, 11):
        tracker.feed_line(f'TRAINWIZ {{"step": {i}, "total": 100, "loss": {5 - i / 10}, '
                          f'"tokens": {i * 4096}}}', t=float(i))
    snap = tracker.snapshot(tokens_per_step=999)
    assert (snap["step"], snap["total"], snap["loss"]) == (10, 100, pytest.approx(4.0))
    assert snap["steps_per_s"] == pytest.approx(1.0)
    assert snap["tokens_per_s"] == pytest.approx(4096.0)
    assert snap["tokens_per_s_source"] == "script"  # the script's tokens, not the plan's
    assert snap["seconds_left"] == pytest.approx(90.0)
    tracker.feed_record({"step": 11, "loss": 3.8}, t=11.0)
    assert tracker.step == 11 and tracker.loss == pytest.approx(3.8)


def test_older_transformers_float_dicts_and_rank_prefixes():
    r = parse_line("[rank0]: {'loss': 2.3456, 'grad_norm': 1.2, 'learning_rate': 5e-05, "
                   "'epoch': 0.25}")
    assert r.kind == "hf" and r.loss == pytest.approx(2.3456) and r.epoch == 0.25
    assert parse_line("{'eval_loss': 2.1, 'eval_runtime': 1.0}") is None  # not training loss
    r = parse_line("{'loss': 1.9, 'num_tokens': 81920.0, 'mean_token_accuracy': 0.5}")  # TRL
    assert r.tokens == 81920


@pytest.mark.parametrize("line", [
    "", "\x00\x01\x02", "{'loss': }", "{'loss': __import__('os')}", "TRAINWIZ {not json",
    "TRAINWIZ []", "step abc loss def", "Step 5 failed: loss of connection", "9" * 5000,
    "[" * 3000 + "1/2 [", "{'loss': " + "[" * 500, "99999999999999999999/3 [00:00<?, ?it/s]",
    "RuntimeError: [/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed",
    "{'loss': 'nan', 'epoch': 1.0}", "TRAINWIZ {\"step\": -3, \"loss\": \"x\"}",
])
def test_garbage_is_ignored_never_a_crash(line):
    tracker = ProgressTracker()
    tracker.feed_text(line + "\n", 0.0)
    snap = tracker.snapshot(tokens_per_step=10)
    assert snap["step"] is None or snap["step"] >= 0
    assert all(isinstance(p[1], float) for p in snap["losses"])


def test_random_bytes_never_crash():
    rng = random.Random(7)
    tracker = ProgressTracker()
    alphabet = "0123456789/[]{}<>:,.' \"\r\nstepsloss=it/sTRAINWIZ%|"
    for _ in range(300):
        tracker.feed_text("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))), 0.0)
    tracker.snapshot(tokens_per_step=1)


def test_a_nan_loss_is_reported_as_not_finite_not_as_a_number():
    tracker = ProgressTracker()
    tracker.feed_line("step 3 loss nan", 0.0)
    snap = tracker.snapshot()
    assert snap["loss"] is None and snap["loss_not_finite"] is True and snap["step"] == 3


def test_plan_tokens_per_step():
    assert plan_tokens_per_step(4, 64, 2, 8) == 4096
    assert plan_tokens_per_step(4, None, 1, 2) is None


def test_an_explicit_line_wins_over_a_guessed_step_line():
    tracker = ProgressTracker()
    tracker.feed_text('rank 0 step 0 loss 9.0\nTRAINWIZ {"step": 1, "total": 5, "loss": 9.0}\n'
                      "rank 0 step 1 loss 8.0\n", 0.0)
    assert (tracker.step, tracker.total) == (1, 5)


def test_the_supervisor_reads_rank_0_from_where_it_stopped(tmp_path):
    """Each poll reads only what was appended since the last (never the whole log again); a
    replaced log is read from its start; metrics.jsonl lines count as well."""
    from trainwiz.launchers.runinfo import RunWatcher, read_progress

    folder = tmp_path / "torchrun" / "x" / "attempt_0" / "0"
    folder.mkdir(parents=True)
    log = folder / "stdout.log"
    log.write_text("noise\n" * 10000 + "step 1/10 loss 4.0\n")
    watcher = RunWatcher(tmp_path, write_every=0)
    watcher.poll(0.0)
    assert watcher.tracker.step == 1
    with open(log, "r+") as fh:  # rewrite what was already read, in place: not read again
        fh.write("step 9/10 loss 0.1\n")
    with open(log, "a") as fh:
        fh.write("step 2/10 loss 3.5\nstep 3/10 lo")
    watcher.poll(1.0)
    assert (watcher.tracker.step, watcher.tracker.loss) == (2, 3.5)
    with open(log, "a") as fh:
        fh.write("ss 3.0\n")
    watcher.poll(1.5)
    assert [h[1] for h in watcher.tracker._history] == [1, 2, 3]  # the cut line, completed
    (tmp_path / "metrics.jsonl").write_text('{"step": 4, "total": 10, "loss": 2.5}\n{"st')
    watcher.poll(2.0)
    assert [h[1] for h in watcher.tracker._history] == [4]  # the script's records take over
    watcher.write(3.0, force=True)
    assert read_progress(tmp_path)["progress"]["step"] == 4
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # the record cut mid-write, completed
        fh.write('ep": 5, "loss": 2.0}\n')
    watcher.poll(3.5)
    assert (watcher.tracker.step, watcher.tracker.loss) == (5, 2.0)
    log.unlink()
    log.write_text("TRAINWIZ {\"step\": 6, \"total\": 10}\n")  # a new file: read from its start
    watcher.poll(4.0)
    assert watcher.tracker.step == 6


def test_hf_trainer_from_its_ordered_output_log():
    """Stdout and stderr in the order written (output.log): each loss lands on the step the
    bar showed when it was logged, and the steps only go forward."""
    tracker = ProgressTracker()
    _feed(tracker, "hf_trainer.output.log")
    snap = tracker.snapshot(finished=True)
    text = (FIXTURES / "hf_trainer.output.log").read_text()
    dicts = [ast.literal_eval(line) for line in text.splitlines() if line.startswith("{'loss'")]
    steps = [step for step, _ in snap["losses"]]
    assert [loss for _, loss in snap["losses"]] == [pytest.approx(float(d["loss"])) for d in dicts]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert (snap["step"], snap["total"]) == (40, 40)


def test_the_plan_gives_the_total_when_the_script_does_not():
    tracker = ProgressTracker(window=2)
    for i in range(1, 6):
        tracker.feed_line(f"step {i} loss {3 - i / 10}", float(i))
    snap = tracker.snapshot(plan_total=100)
    assert (snap["total"], snap["total_source"]) == (100, "plan")
    assert snap["seconds_left"] == pytest.approx(95.0)  # 1 step/s, 95 steps to go
    tracker.feed_line("TRAINWIZ {\"step\": 6, \"total\": 50}", 6.0)  # the script's own wins
    assert tracker.snapshot(plan_total=100)["total"] == 50


def test_the_scripts_own_records_take_over_from_a_guess_with_their_own_rates():
    """examples/train_ddp.py prints 'rank 0 step N' from 0 and writes metrics.jsonl from 1:
    the guessed first reading stayed in the rates and the loss curve, so a script that cannot
    go faster than 2 steps/s read 2.12 steps/s, tokens/s stayed unknown for the first half
    minute, and the curve began with the same loss twice."""
    tracker = ProgressTracker(window=30)
    tracker.feed_line("rank 0 step 0 loss 35.86", 0.1)  # stdout comes first
    for step in range(1, 9):  # then the records, every 0.5 s, 1,000 tokens a step
        t = 0.5 * step
        tracker.feed_record({"step": step, "total": 30, "loss": 36.0 - step,
                             "tokens": 1000 * step}, t)
        tracker.feed_line(f"rank 0 step {step} loss {36.0 - step}", t + 0.01)
    snap = tracker.snapshot()
    assert snap["steps_per_s"] == pytest.approx(2.0)
    assert snap["tokens_per_s"] == pytest.approx(2000.0)
    assert [x for x, _ in snap["losses"]] == list(range(1, 9))


def _short_run(with_time: bool) -> str:
    """Ten metrics.jsonl records of a run 0.2 s a step, written before the supervisor's first
    read (the cpu-lora example: its 10 steps end between two polls)."""
    lines = []
    for i in range(1, 11):
        record = {"step": i, "total": 10, "loss": 6.0, "tokens": i * 1024}
        if with_time:
            record["time"] = 1796168574.5 + 0.2 * i
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


def test_a_short_run_read_at_once_is_measured_by_the_script_clock():
    tracker = ProgressTracker()
    for line in _short_run(with_time=True).splitlines():
        tracker.feed_record(json.loads(line), t=100.0)  # one read: no span by the reads
    snap = tracker.snapshot(finished=True)
    assert snap["step"] == 10
    assert snap["steps_per_s"] == pytest.approx(5.0)  # 9 steps in 1.8 s by the script's clock
    assert snap["tokens_per_s"] == pytest.approx(5.0 * 1024)
    assert snap["tokens_per_s_source"] == "script"
    assert parse_line('TRAINWIZ {"step": 3, "time": 12.5}').time == 12.5


def test_a_short_run_read_at_once_without_times_has_no_rate_not_a_guess():
    tracker = ProgressTracker()
    for line in _short_run(with_time=False).splitlines():
        tracker.feed_record(json.loads(line), t=100.0)
    tracker.feed_record({"step": 10, "total": 10}, t=100.5)  # a second read half a second on
    snap = tracker.snapshot(finished=True)
    assert snap["step"] == 10 and snap["steps_per_s"] is None and snap["tokens_per_s"] is None
