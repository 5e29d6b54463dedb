"""What a run promised and what it did: the launch estimate, progress, measured memory.

Files in the run directory (beside those :mod:`trainwiz.launchers.rundir` describes)::

    estimate.json   the estimate the run was launched with (per-GPU breakdown, tokens a step)
    progress.json   written by the supervisor: rank 0's progress (step, total, loss, rates,
                    time left, the loss curve) and each rank's peak memory (GPU per process
                    from NVML, host RSS)
    metrics.jsonl   optional, appended by the training script ($TRAINWIZ_RUN_DIR/metrics.jsonl)

:class:`RunWatcher` is what the supervisor runs every poll: it reads rank 0's log files and
``metrics.jsonl`` from where it stopped last time (never the whole file again) and feeds
:class:`~trainwiz.launchers.progress.ProgressTracker`. :func:`memory_check` compares measured
peaks with the estimate; CPU runs and simulated boxes get no comparison, only the reason.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from trainwiz.estimator.catalog import model_from_params, resolve_model

from trainwiz.estimator.fit import estimate
from trainwiz.launchers.progress import ProgressTracker, plan_tokens_per_step
from trainwiz.launchers.rundir import rank_log_dir, write_json_atomic
from trainwiz.profiles import estimate_request
from trainwiz.profiles.estimator_inputs import model_argument
from trainwiz.units import format_bytes

ESTIMATE_FILE = "estimate.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
OVER = 0.10  # measured more than 10% above the estimate: said, with what is likely different
MAX_READ = 1 << 20  # bytes read from one file in one poll
BEHIND = 8 << 20  # further behind than this: skip to the newest MAX_READ bytes


# ---- the estimate the run was launched with ------------------------------------------------


SIM_NOTE = "sim: on simulated GPUs (--simulate); memory readings not measured"


def run_kind(status) -> str:
    """``cpu`` (host memory, measured whatever box was simulated), ``sim`` (a simulated box:
    made-up GPU readings, labelled so wherever a run is listed) or ``gpu``."""
    if status.device == "cpu":
        return "cpu"
    return "sim" if status.simulate else "gpu"


def plan_estimate(profile, nproc: int, gpu_memory: int | None = None) -> dict | None:
    """The estimate for ``profile`` with ``nproc`` ranks a machine, as saved in estimate.json;
    None when the profile names no model. Raises nothing the launch should stop for."""
    try:
        request = estimate_request(profile, nproc)
    except Exception as exc:  # noqa: BLE001 - never a reason not to launch
        return {"error": str(exc)}
    if request is None:
        return None
    model_str, config = request
    name, params = model_argument(model_str)
    try:
        model = model_from_params(params) if params is not None else resolve_model(name)
        est = estimate(model, config, gpu_memory=gpu_memory, suggestions=False)
    except Exception as exc:  # noqa: BLE001 - the run starts anyway; the monitor says why
        return {"model": model_str, "error": str(exc)}
    inputs = profile.estimate
    data = est.to_json()
    data.pop("suggestions", None)
    data["model"]["argument"] = model_str
    data["tokens_per_step"] = plan_tokens_per_step(inputs.batch_size, inputs.seq_len,
                                                   inputs.grad_accum, config.num_gpus)
    data["plan"] = {k: getattr(inputs, k, None) for k in (
        "batch_size", "seq_len", "grad_accum", "optimizer", "fused_optimizer",
        "activation_checkpointing", "attention", "loop", "method", "steps", "tokens")}
    data["plan_steps"] = plan_steps(getattr(inputs, "steps", None),
                                    getattr(inputs, "tokens", None), data["tokens_per_step"])
    return data


def plan_steps(steps, tokens, tokens_per_step) -> int | None:
    """The plan's training length in optimizer steps: its steps, or its tokens over the tokens
    a step takes (rounded up); None when the plan says neither."""
    if steps:
        return int(steps)
    if tokens and tokens_per_step:
        return -(-int(tokens) // int(tokens_per_step))
    return None


def save_estimate(run_dir, data: dict | None) -> None:
    if data is not None:
        write_json_atomic(Path(run_dir) / ESTIMATE_FILE, data)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_estimate(run_dir) -> dict | None:
    data = _read_json(Path(run_dir) / ESTIMATE_FILE)
    return data if isinstance(data, dict) else None


def read_progress(run_dir) -> dict | None:
    data = _read_json(Path(run_dir) / PROGRESS_FILE)
    return data if isinstance(data, dict) else None


# ---- following files -----------------------------------------------------------------------

class Follower:
    """New bytes of one growing file since the last call (a file that shrank starts again)."""

    def __init__(self, path: Path | None = None, *, tail: int | None = None) -> None:
        self.path = path
        self.offset = 0
        self.restarted = False  # the last read started the file again (replaced, truncated)
        self._ino = None
        self._tail = tail  # first read: only the last ``tail`` bytes, from a line start

    def read(self) -> str:
        self.restarted = False
        if self.path is None:
            return ""
        try:
            st = os.stat(self.path)
        except OSError:
            return ""
        skip_partial = False
        if st.st_ino != self._ino or st.st_size < self.offset:  # new, replaced or truncated
            self.restarted = self._ino is not None
            self._ino, self.offset = st.st_ino, 0
            if self._tail is not None and st.st_size > self._tail:
                self.offset, skip_partial = st.st_size - self._tail, True
        if st.st_size == self.offset:
            return ""
        if st.st_size - self.offset > BEHIND:
            self.offset = st.st_size - MAX_READ
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(MAX_READ)
        except OSError:
            return ""
        self.offset += len(data)
        text = data.decode("utf-8", "replace")
        if skip_partial:  # started mid-file: the first line is only its end
            text = text.split("\n", 1)[1] if "\n" in text else ""
        return text


# ---- the supervisor's side -----------------------------------------------------------------

def rank_gpu_memory(gpus, pids: dict[int, int]) -> dict[int, tuple[int, int]]:
    """rank -> (GPU index, bytes) from NVML's per-process lists; ``pids`` maps pid -> rank.
    A rank on several GPUs (rare) counts its largest."""
    out: dict[int, tuple[int, int]] = {}
    for gpu in gpus:
        for proc in getattr(gpu, "processes", ()) or ():
            rank = pids.get(proc.pid)
            if rank is None or proc.memory_used is None:
                continue
            if rank not in out or proc.memory_used > out[rank][1]:
                out[rank] = (gpu.index, int(proc.memory_used))
    return out


def rank_logs(folder: Path) -> dict[str, Follower]:
    """Followers for one rank's output: ``output.log`` (stdout and stderr in the order written,
    kept by the rank's entry script) when it exists, else stdout.log and stderr.log (a run
    from before it, or a launch without the entry script) once they have anything. Empty while
    neither is there yet: ask again."""
    if (folder / "output.log").is_file():
        return {"output.log": Follower(folder / "output.log")}
    names = ("stdout.log", "stderr.log")
    try:
        if any((folder / n).stat().st_size for n in names if (folder / n).is_file()):
            return {n: Follower(folder / n) for n in names}
    except OSError:
        pass
    return {}


class RunWatcher:
    """Reads rank 0's output and the samples as the run goes; writes progress.json."""

    def __init__(self, run_dir, *, write_every: float = 1.0) -> None:
        self.run_dir = Path(run_dir)
        self.tracker = ProgressTracker()
        self.write_every = write_every
        self.estimate = read_estimate(self.run_dir)
        self.peaks: dict[int, dict] = {}
        self.simulated = False
        self.gpu_samples = False
        self._folder: Path | None = None
        self._folder_checked = 0.0
        self._logs: dict[str, Follower] = {}
        self._metrics = Follower(self.run_dir / METRICS_FILE)
        self._metrics_partial = ""
        self._written = 0.0
        self._last: str | None = None

    def _rank0_folder(self, now: float) -> Path | None:
        # a restart (max_restarts) makes a new attempt folder: look again now and then
        if self._folder is None or now - self._folder_checked > 10:
            self._folder_checked = now
            folder = rank_log_dir(self.run_dir, 0)
            if folder is not None and folder != self._folder:
                self._folder, self._logs = folder, {}
                self.tracker = ProgressTracker()  # a new attempt starts from its own step
        if self._folder is not None and not self._logs:
            self._logs = rank_logs(self._folder)
        return self._folder

    def poll(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._rank0_folder(now)
        for name, follower in self._logs.items():
            text = follower.read()
            if text:
                self.tracker.feed_text(text, now, name)
        text = self._metrics.read()
        if text:
            lines = (self._metrics_partial + text).split("\n")
            self._metrics_partial = lines.pop()  # being written now: the rest comes next poll
            for line in lines:
                try:
                    self.tracker.feed_record(json.loads(line), now)
                except ValueError:  # not a record: ignored
                    continue

    def on_sample(self, sample: dict) -> None:
        """Peaks per rank from one sample of the supervisor (ranks' rss and gpu_memory)."""
        self.simulated = self.simulated or bool(sample.get("simulated"))
        self.gpu_samples = self.gpu_samples or bool(sample.get("gpus"))
        for r in sample.get("ranks", []) or []:
            rank = r.get("rank")
            if rank is None:
                continue
            peak = self.peaks.setdefault(rank, {"rank": rank})
            for key, out in (("rss", "host_peak"), ("gpu_memory", "gpu_peak")):
                value = r.get(key)
                if isinstance(value, int) and value > (peak.get(out) or 0):
                    peak[out] = value
            if r.get("gpu") is not None:
                peak["gpu"] = r["gpu"]

    def snapshot(self, finished: bool = False) -> dict:
        tps = (self.estimate or {}).get("tokens_per_step")
        return {"progress": self.tracker.snapshot(tps, finished=finished,
                                                  plan_total=(self.estimate or {}).get(
                                                      "plan_steps")),
                "peaks": [self.peaks[r] for r in sorted(self.peaks)],
                "simulated": self.simulated, "gpu_samples": self.gpu_samples,
                "updated": time.time()}

    def write(self, now: float | None = None, *, force: bool = False,
              finished: bool = False) -> None:
        now = time.monotonic() if now is None else now
        if not force and now - self._written < self.write_every:
            return
        if finished:
            self.tracker.flush(now)
        data = self.snapshot(finished)
        key = json.dumps({k: v for k, v in data.items() if k != "updated"}, sort_keys=True)
        if key == self._last and not force:
            return
        self._written, self._last = now, key
        write_json_atomic(self.run_dir / PROGRESS_FILE, data)


# ---- estimate against measured -------------------------------------------------------------

def _likely_differences(estimate: dict, progress: dict | None) -> list[str]:
    plan = estimate.get("plan") or {}
    out = []
    tps = estimate.get("tokens_per_step")
    prog = (progress or {}).get("progress") or {}
    if (prog.get("tokens_per_s_source") == "script" and prog.get("steps_per_s") and tps
            and prog.get("tokens_per_s")):
        seen = prog["tokens_per_s"] / prog["steps_per_s"]
        if abs(seen - tps) > 0.1 * tps:
            out.append(f"the script reports {seen:,.0f} tokens a step; the plan has {tps:,} "
                       f"(batch {plan.get('batch_size')} x seq {plan.get('seq_len')} x "
                       f"accumulation x ranks)")
    if not out:
        out.append(f"a bigger batch or longer sequences than planned (plan: batch "
                   f"{plan.get('batch_size')} x seq {plan.get('seq_len')})")
    if plan.get("activation_checkpointing"):
        out.append("activation checkpointing off in the script (planned on)")
    if plan.get("loop") == "trainer":
        out.append("a loop that keeps the outputs through backward (planned: the HF Trainer's)")
    if plan.get("fused_optimizer"):
        out.append("a foreach optimizer (planned: fused)")
    if plan.get("attention") == "sdpa":
        out.append("eager attention (planned: SDPA)")
    return out[:4]


def memory_check(estimate: dict | None, progress: dict | None, *, device: str | None,
                 simulated: bool) -> dict:
    """Estimated against measured peak per GPU. ``comparison`` is False with a ``reason`` when
    no honest comparison exists (CPU run, simulated box, no estimate, no per-process reading)."""
    out: dict = {"comparison": False, "reason": None, "estimated_peak": None, "per_gpu": [],
                 "over": False, "likely": []}
    if device == "cpu":
        out["reason"] = "CPU run: no GPU comparison (the ranks' host memory is shown instead)"
        return out
    if simulated or (progress or {}).get("simulated"):
        out["reason"] = "simulated box: no GPU comparison (no real GPU memory was measured)"
        return out
    if not estimate or estimate.get("error") or not estimate.get("per_gpu"):
        out["reason"] = ("no estimate to compare with: " + estimate["error"]) if estimate and \
            estimate.get("error") else "no estimate to compare with (the profile names no model)"
        return out
    total = int(estimate["per_gpu"]["total"])
    out["estimated_peak"] = total
    peaks = [p for p in (progress or {}).get("peaks", []) if p.get("gpu_peak")]
    if not peaks:
        out["reason"] = ("no per-process GPU memory measured yet (NVML lists no process of "
                         "this run; inside a container it may not see them)")
        return out
    out["comparison"] = True
    for p in peaks:
        measured = int(p["gpu_peak"])
        over = measured > total * (1 + OVER)
        out["per_gpu"].append({"gpu": p.get("gpu"), "rank": p["rank"], "estimated_peak": total,
                               "measured_peak": measured, "ratio": round(measured / total, 3),
                               "over": over})
        out["over"] = out["over"] or over
    if out["over"]:
        out["likely"] = _likely_differences(estimate, progress)
    return out


def run_report(run_dir, status) -> dict:
    """``progress`` and ``memory`` for ``trainwiz runs --json`` / ``runs show``."""
    progress = read_progress(run_dir)
    estimate = read_estimate(run_dir)
    prog = (progress or {}).get("progress")
    if prog is not None:
        prog = {k: v for k, v in prog.items() if k != "losses"}
        if status is not None and getattr(status, "finished", False):
            prog["seconds_left"] = None
    memory = memory_check(estimate, progress, device=getattr(status, "device", None),
                          simulated=bool(getattr(status, "simulate", None)))
    memory["host_peaks"] = [{"rank": p["rank"], "host_peak": p.get("host_peak")}
                            for p in (progress or {}).get("peaks", [])]
    return {"progress": prog, "memory": memory}


# ---- words for the CLI and the monitor -----------------------------------------------------

def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    if seconds is None:
        return "?"
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 100 * 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return ">99h"


def _si(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def progress_parts(prog: dict | None, *, finished: bool = False,
                   estimated_tokens_per_s: float | None = None) -> list[str]:
    """Short pieces: ``step 20/40``, ``loss 5.846``, ``6.7 steps/s``, ``3.4k tok/s (plan)``,
    ``6s left``. Only what was read from the run or computed from it; the time model's
    tokens/s for the plan, when given, beside the measured: ``3.4k tok/s (plan; est. 4.1k)``."""
    if not prog:
        return []
    parts = []
    step, total = prog.get("step"), prog.get("total")
    if step is not None:
        of_plan = " (plan)" if total and prog.get("total_source") == "plan" else ""
        parts.append(f"step {step}/{total}{of_plan}" if total else f"step {step}")
    if prog.get("loss") is not None:
        parts.append(f"loss {prog['loss']:.4g}")
    elif prog.get("loss_not_finite"):
        parts.append("loss NOT FINITE")
    if prog.get("steps_per_s"):
        rate = prog["steps_per_s"]
        parts.append(f"{rate:.3g} steps/s" if rate >= 1 else f"{1 / rate:.3g} s/step")
    if prog.get("tokens_per_s"):
        notes = ["plan"] if prog.get("tokens_per_s_source") == "plan" else []
        if estimated_tokens_per_s:
            notes.append(f"est. {_si(estimated_tokens_per_s)}")
        parts.append(f"{_si(prog['tokens_per_s'])} tok/s"
                     + (f" ({'; '.join(notes)})" if notes else ""))
    if not finished and prog.get("seconds_left") is not None:
        parts.append(f"{duration(prog['seconds_left'])} left")
    return parts


def memory_over_text(check: dict) -> str | None:
    """One line when a rank's measured GPU memory passed the estimate by more than 10%."""
    worst = max((g for g in check.get("per_gpu", []) if g["over"]),
                key=lambda g: g["ratio"], default=None)
    if worst is None:
        return None
    return (f"GPU memory {100 * (worst['ratio'] - 1):.0f}% over the estimate: rank "
            f"{worst['rank']} (GPU {worst['gpu']}) peaked at "
            f"{format_bytes(worst['measured_peak'], unit='GiB')}, "
            f"est. {format_bytes(worst['estimated_peak'], unit='GiB', bare=True)}")
