"""Training progress read from what a training script prints. Pure: text in, numbers out.

Recognised, line by line (``\\r`` ends a line too, as tqdm redraws with it):

* the HF Trainer's and TRL's log dicts: ``{'loss': 1.23, 'grad_norm': ..., 'learning_rate': ...,
  'epoch': 0.5}`` (transformers 5 prints the values as strings: ``{'loss': '1.23', ...}``), and
  the final ``{'train_runtime': ..., 'train_steps_per_second': ..., 'train_loss': ...}``;
  TRL's ``num_tokens`` counts the tokens seen so far;
* tqdm bars: ``12/100 [00:10<01:20, 1.15it/s, loss=2.31]`` (the training bar is the one
  running: a bar with another total that starts before it finished, an evaluation, is left
  out; loading and dataset bars before it have finished when it starts);
* ``step N ... loss X`` lines (accelerate's and lightning's examples, nanoGPT's ``iter N: loss
  X``, ``Step 10/100 | loss 2.3``);
* an explicit line a script prints: ``TRAINWIZ {"step": 10, "total": 100, "loss": 2.3,
  "tokens": 40960, "time": 1796168574.8}``, or the same object appended to
  ``$TRAINWIZ_RUN_DIR/metrics.jsonl`` (``time``, optional: when the step ended by the script's
  clock, seconds since the epoch).

Anything else is ignored; no input makes a parser raise. :class:`ProgressTracker` keeps the
state (step, total, loss, rates, the loss curve) and :meth:`ProgressTracker.snapshot` gives the
numbers to show: steps/s and the time left from the bar when it says them, else from the steps
seen over time (by the script's own ``time`` when its records carry one, else by when they were
read: a run whose steps were all read within a second has no measured rate); tokens/s from the tokens the script reports, else from the plan's tokens per
step (labelled as such).
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field

MAX_LINE = 4096  # longer lines are not progress lines (and are not parsed)
MAX_POINTS = 400  # loss points kept; older ones are thinned, never the newest

_PREFIX = re.compile(r"^\s*(?:\[(?:rank|default)\d+\]:\s*)+")
_TRAINWIZ = re.compile(r"^\s*TRAINWIZ\s+(\{.*\})\s*$")
_DICT = re.compile(r"(\{['\"](?:loss|train_runtime|eval_loss|train_loss)['\"]\s*:.*\})")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_TQDM = re.compile(
    r"(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<elapsed>[\d:]+)<(?P<left>[\d:]+|\?)"
    r"(?:,\s*(?P<rate>[\d.]+|\?)\s*(?P<prefix>[kMG]?)(?P<unit>[A-Za-z]*)/(?P<per>[A-Za-z]+))?"
    r"(?P<post>,[^\]]*)?\]")
_STEP = re.compile(
    r"\b(?:global[_ ]step|step|iter(?:ation)?)\b\s*[:=#]?\s*(?P<step>\d+)"
    r"(?:\s*(?:/|of)\s*(?P<total>\d+))?"
    r"(?P<rest>.*?)\b(?:train[_ /])?loss\b\s*[:=]?\s*(?P<loss>" + _NUM + r")\b",
    re.IGNORECASE)
_POSTFIX_LOSS = re.compile(r"\b(?:train_)?loss\s*=\s*(" + _NUM + r")", re.IGNORECASE)


def _number(value) -> float | None:
    """A finite float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return out


def _int(value) -> int | None:
    num = _number(value)
    if num is None or math.isnan(num) or math.isinf(num) or num < 0:
        return None
    return int(num)


def _seconds(clock: str) -> float | None:
    """tqdm's ``01:20`` / ``1:02:03`` as seconds."""
    try:
        parts = [int(p) for p in clock.split(":")]
    except ValueError:
        return None
    out = 0
    for p in parts:
        out = out * 60 + p
    return float(out)


@dataclass(frozen=True)
class Reading:
    """What one line said. Fields the line did not say are None."""

    kind: str  # "trainwiz" | "hf" | "hf_final" | "tqdm" | "step"
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    epoch: float | None = None
    tokens: int | None = None  # tokens seen so far (cumulative), when the script says
    steps_per_s: float | None = None
    seconds_left: float | None = None
    time: float | None = None  # when the step ended, by the script's clock (epoch seconds)


def parse_record(data) -> Reading | None:
    """A ``TRAINWIZ {...}`` object or a ``metrics.jsonl`` line (already decoded)."""
    if not isinstance(data, dict):
        return None
    reading = Reading(kind="trainwiz", step=_int(data.get("step")), total=_int(data.get("total")),
                      loss=_number(data.get("loss")), epoch=_number(data.get("epoch")),
                      tokens=_int(data.get("tokens")),
                      steps_per_s=_number(data.get("steps_per_s")),
                      time=_number(data.get("time")))
    if all(v is None for v in (reading.step, reading.loss, reading.tokens, reading.total)):
        return None
    return reading


def _parse_dict(text: str) -> Reading | None:
    try:
        data = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if "train_runtime" in data or "train_loss" in data:
        return Reading(kind="hf_final", loss=_number(data.get("train_loss")),
                       epoch=_number(data.get("epoch")),
                       steps_per_s=_number(data.get("train_steps_per_second")))
    if "loss" not in data:
        return None  # an evaluation dict: not the training loss
    return Reading(kind="hf", loss=_number(data.get("loss")), epoch=_number(data.get("epoch")),
                   tokens=_int(data.get("num_tokens")), step=_int(data.get("step")))


def _parse_tqdm(text: str) -> Reading | None:
    found = None
    for found in _TQDM.finditer(text):  # the last bar on the line is the current one
        pass
    if found is None:
        return None
    n, total = int(found["n"]), int(found["total"])
    if total <= 0 or n > total:
        return None
    rate = None
    if found["rate"] and found["rate"] != "?":
        value = float(found["rate"]) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[found["prefix"] or ""]
        if found["per"] == "s" and value > 0:  # "1.15it/s"
            rate = value
        elif found["unit"] == "s" and value > 0:  # "3.2s/it"
            rate = 1.0 / value
    left = _seconds(found["left"]) if found["left"] != "?" else None
    loss = None
    if found["post"]:
        m = _POSTFIX_LOSS.search(found["post"])
        loss = _number(m.group(1)) if m else None
    return Reading(kind="tqdm", step=n, total=total, loss=loss, steps_per_s=rate,
                   seconds_left=left)


def parse_line(line: str) -> Reading | None:
    """What ``line`` says about progress, or None. Never raises."""
    if not line or len(line) > MAX_LINE:
        return None
    try:
        text = _PREFIX.sub("", line)
        m = _TRAINWIZ.match(text)
        if m:
            try:
                return parse_record(json.loads(m.group(1)))
            except ValueError:
                return None
        m = _DICT.search(text)
        if m:
            reading = _parse_dict(m.group(1))
            if reading is not None:
                return reading
        if "/" in text and "[" in text:
            reading = _parse_tqdm(text)
            if reading is not None:
                return reading
        m = _STEP.search(text)
        if m:
            return Reading(kind="step", step=int(m["step"]),
                           total=int(m["total"]) if m["total"] else None,
                           loss=_number(m["loss"]))
    except (ValueError, OverflowError, RecursionError):
        return None
    return None


_TRUST = {"trainwiz": 3, "hf": 2, "hf_final": 2, "tqdm": 2, "step": 1}


@dataclass
class ProgressTracker:
    """The progress of one run, fed with rank 0's output (and metrics.jsonl) as it comes.

    ``t`` is when the text was read (seconds, any clock): with no rate from the script, steps/s
    is measured between readings at least ``window`` seconds apart (and never from readings
    under a second apart: the reads come every half second, a whole short run in one or two).
    Records that carry the script's own ``time`` are measured by it instead, at any span.
    """

    window: float = 30.0
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    epoch: float | None = None
    tokens: int | None = None
    bar_rate: float | None = None  # steps/s as the script's bar said it
    bar_left: float | None = None  # seconds left as the script's bar said it
    bar_t: float | None = None
    finished_rate: float | None = None  # the HF Trainer's final train_steps_per_second
    final_loss: float | None = None
    first_t: float | None = None
    last_t: float | None = None
    sources: set = field(default_factory=set)
    losses: list = field(default_factory=list)  # [step or index, loss]
    _history: list = field(default_factory=list)  # [t, step, tokens]
    _script_history: list = field(default_factory=list)  # [script's time, step, tokens]
    _partial: dict = field(default_factory=dict)
    _bar_total: int | None = None
    _trust: int = 0

    # -- feeding ---------------------------------------------------------------------------
    def feed_text(self, chunk: str, t: float, stream: str = "") -> None:
        """Text as it was appended to a log (``stream`` names the file: each keeps its own cut
        line); a line cut by the end of ``chunk`` waits for the rest."""
        text = self._partial.get(stream, "") + chunk
        pieces = re.split(r"[\r\n]", text)
        rest = pieces.pop() if pieces else ""
        self._partial[stream] = rest if len(rest) <= MAX_LINE else ""  # endless: not progress
        for piece in pieces:
            self.feed_line(piece, t)

    def flush(self, t: float) -> None:
        """The run ended: a last line without its newline counts too."""
        for stream, rest in list(self._partial.items()):
            self._partial[stream] = ""
            self.feed_line(rest, t)

    def feed_line(self, line: str, t: float) -> None:
        reading = parse_line(line)
        if reading is not None:
            self.feed(reading, t)

    def feed_record(self, data, t: float) -> None:
        reading = parse_record(data)
        if reading is not None:
            self.feed(reading, t)

    def feed(self, r: Reading, t: float) -> None:
        # an explicit TRAINWIZ line beats a recognised format, which beats a "step N loss X"
        # guess: a script that prints several does not make the step jump between them
        rank = _TRUST[r.kind]
        if rank < self._trust:
            return
        if rank > self._trust and self.sources:
            # a more trusted source takes over (a script's metrics.jsonl after its printed
            # "step N"): rates and the loss curve are its own, not mixed with the guess's
            # numbering (one may count from 0, the other from 1)
            self._history = []
            self._script_history = []
            self.losses = []
        self._trust = rank
        if r.kind == "tqdm":
            # the training bar: the first one, or a new one once the last has finished (after
            # "Loading checkpoint shards 4/4" or a dataset's "Map" bar); a bar with another
            # total while it runs (evaluation) is not the training step
            done = self.step is not None and self.step >= (self._bar_total or 0)
            if self._bar_total is None or r.total == self._bar_total or done:
                self._bar_total = r.total
            else:
                return
            self.bar_rate = r.steps_per_s if r.steps_per_s is not None else self.bar_rate
            self.bar_left = r.seconds_left
            self.bar_t = t
        self.sources.add(r.kind)
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        if r.kind == "hf_final":
            self.finished_rate = r.steps_per_s
            self.final_loss = r.loss
            if self.total is not None:
                self.step = self.total
            return
        if r.total is not None:
            self.total = r.total
        if r.step is not None:
            self.step = r.step
        if r.epoch is not None:
            self.epoch = r.epoch
        if r.tokens is not None:
            self.tokens = r.tokens
        if r.loss is not None:
            self.loss = r.loss
        if r.loss is not None and math.isfinite(r.loss):
            if r.kind != "tqdm" or not self.losses or self.losses[-1][0] != self.step:
                x = self.step if self.step is not None else len(self.losses)
                if self.losses and self.losses[-1][0] == x and r.kind != "hf":
                    self.losses[-1] = [x, r.loss]
                else:
                    self.losses.append([x, r.loss])
                if len(self.losses) > MAX_POINTS:  # thin the older half, keep the recent ones
                    half = len(self.losses) // 2
                    self.losses = self.losses[:half:2] + self.losses[half:]
        if r.step is not None:
            self._remember(self._history, t, r.step)
            if r.time is not None and math.isfinite(r.time):
                self._remember(self._script_history, r.time, r.step)

    def _remember(self, history: list, t: float, step: int) -> None:
        if history and (step < history[-1][1] or t < history[-1][0]):
            history.clear()  # a new epoch's bar or a restart: rates start again
        history.append([t, step, self.tokens])
        cutoff = t - 4 * self.window
        while len(history) > 2 and history[0][0] < cutoff:
            history.pop(0)

    # -- reading ---------------------------------------------------------------------------
    def _measured_rates(self) -> tuple[float | None, float | None]:
        """(steps/s, tokens/s) between the newest reading and one ``window`` older (or the
        oldest): by the script's clock when its records carry one, else by when they were read
        (then only over a second or more)."""
        history, shortest = self._script_history, 0.0
        if len(history) < 2 or history[-1][1] == history[0][1]:
            history, shortest = self._history, 1.0
        if len(history) < 2:
            return None, None
        t1, s1, k1 = history[-1]
        older = [h for h in history if t1 - h[0] >= self.window]
        t0, s0, k0 = older[-1] if older else history[0]
        if t1 - t0 <= 0 or t1 - t0 < shortest or s1 == s0:
            return None, None
        steps = (s1 - s0) / (t1 - t0)
        tokens = (k1 - k0) / (t1 - t0) if k0 is not None and k1 is not None and k1 > k0 else None
        return steps, tokens

    def snapshot(self, tokens_per_step: int | None = None, *, finished: bool = False,
                 plan_total: int | None = None) -> dict:
        """What to show. ``tokens_per_step``: the plan's (batch x seq x accumulation x ranks),
        used for tokens/s only when the script reports no tokens; ``plan_total``: the plan's
        training length in steps, the total when the script does not say one."""
        steps_s, tokens_s = self._measured_rates()
        rate_source = "measured"
        if self.bar_rate is not None and not finished:
            steps_s, rate_source = self.bar_rate, "bar"
        if finished and self.finished_rate is not None:
            steps_s, rate_source = self.finished_rate, "script"
        tokens_source = "script" if tokens_s is not None else None
        if tokens_s is None and steps_s is not None and tokens_per_step:
            tokens_s, tokens_source = steps_s * tokens_per_step, "plan"
        total, total_source = self.total, "script" if self.total is not None else None
        if total is None and plan_total:
            total, total_source = int(plan_total), "plan"
        left = None
        if not finished and total is not None and self.step is not None:
            if self.bar_left is not None and total_source == "script":
                left = self.bar_left
            elif steps_s:
                left = max(total - self.step, 0) / steps_s
        # the last logged loss (the curve's end); the HF Trainer's final train_loss is a mean
        # over the whole run, used only when nothing else was logged
        loss = self.loss if self.loss is not None else self.final_loss
        return {
            "step": self.step, "total": total, "total_source": total_source,
            "loss": loss if loss is None or math.isfinite(loss) else None,
            "loss_not_finite": loss is not None and not math.isfinite(loss),
            "epoch": self.epoch, "tokens": self.tokens,
            "steps_per_s": steps_s, "steps_per_s_source": rate_source if steps_s else None,
            "tokens_per_s": tokens_s, "tokens_per_s_source": tokens_source,
            "seconds_left": left,
            "formats": sorted(self.sources),
            "losses": [list(p) for p in self.losses],
        }


def plan_tokens_per_step(batch_size, seq_len, grad_accum, world_size) -> int | None:
    """Tokens one optimizer step consumes over all ranks, by the plan (None when unknown)."""
    values = (batch_size, seq_len, grad_accum or 1, world_size)
    if any(v is None or v <= 0 for v in values):
        return None
    out = 1
    for v in values:
        out *= int(v)
    return out
