"""The run monitor: training progress, each rank's memory against the estimate, logs and plots.

Everything comes from the run directory (``trainwiz.launchers``: status, samples, progress,
the launch estimate, logs), read by a one-shot thread worker; the next read is scheduled only
after the last one was shown. Files are followed from where the last read stopped, never read
whole again. The monitor never needs to be the process that launched the run, and leaving it
never stops the run: stop (with a confirmation) and leave are separate keys, and a finished run
offers neither, only "Back".

One row a rank: its GPU (or, for a CPU run, its host memory), state, memory now with the
estimated peak marked, and the estimate column (``+23%`` when it runs over). Readings from a
simulated box are labelled simulated; CPU runs and simulated boxes have no GPU comparison.
Below, one view at a time (``v`` switches): the selected rank's log, the loss curve, memory over
time against the estimate.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Log, Static
from textual.worker import Worker, WorkerState

from trainwiz.errors import TrainwizError
from trainwiz.estimator.catalog import model_from_params, resolve_model
from trainwiz.estimator.fit import estimate
from trainwiz.launchers import slurm_jobs, stop_run
from trainwiz.launchers.failures import failure_summary
from trainwiz.launchers.rundir import rank_log_paths, read_samples, read_status
from trainwiz.launchers.runinfo import (
    Follower,
    rank_logs,
    memory_check,
    memory_over_text,
    progress_parts,
    read_estimate,
    read_progress,
    run_kind,
)
from trainwiz.profiles import estimate_request, read_profile_file
from trainwiz.profiles.estimator_inputs import model_argument, profile_time
from trainwiz.tui import fmt
from trainwiz.tui.screens.confirm import ConfirmScreen
from trainwiz.tui.widgets.bars import usage_bar
from trainwiz.tui.widgets.footer import KeysFooter
from trainwiz.tui.widgets.run_plot import PlotData, RunPlot
from trainwiz.units import format_bytes
from trainwiz.text import printable

POLL_S = 2.0  # the supervisor samples memory every 2 s and writes progress every second
HISTORY = 300  # samples kept for the memory plot (the supervisor samples every 2 s)
LOG_TAIL = 64 * 1024  # a rank's log is opened this far from its end, then followed
STATE_STYLE = {"starting": "yellow", "running": "green", "succeeded": "bold green",
               "failed": "bold red", "stopped": "yellow", "damaged": "bold red"}
VIEWS = ("log", "loss", "memory")
WIDE = 110  # columns from which the rows also show GPU utilization, temperature and power


class RunPolled(Message):
    def __init__(self, status, samples: tuple = (), log: list[str] | None = None,
                 error: str | None = None, plan=None, *, rank: int = 0, reset: bool = False,
                 progress: dict | None = None, estimate: dict | None = None) -> None:
        super().__init__()
        self.status = status
        self.samples = samples
        self.log = log or []
        self.error = error
        self.plan = plan
        self.rank = rank
        self.reset = reset
        self.progress = progress
        self.estimate = estimate


class RunStopped(Message):
    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__()
        self.text = text
        self.error = error


class Plan:
    """What the frozen profile says about memory: the estimate and the change that fits."""

    def __init__(self, profile=None, estimate=None, fix=None, error: str | None = None) -> None:
        self.profile = profile
        self.estimate = estimate
        self.fix = fix  # a Suggestion whose change makes it fit, or None
        self.error = error


def load_plan(run_dir: Path, num_gpus: int | None, gpus: list, name: str | None = None) -> Plan:
    """The estimate for the run's frozen profile, with suggestions (a thread worker calls this)."""
    path = run_dir / "profile.yaml"
    if not path.is_file():
        return Plan(error="the run has no frozen profile")
    try:
        profile = read_profile_file(path, name=name or None)
        request = estimate_request(profile, num_gpus)
        if request is None:
            return Plan(profile=profile, error="the profile has no model: no estimate to compare")
        model_str, config = request
        name, params = model_argument(model_str)
        model = model_from_params(params) if params is not None else resolve_model(name)
        caps = [g.get("memory_total") for g in gpus if g.get("memory_total")]
        est = estimate(model, config, gpu_memory=min(caps) if caps else None)
    except Exception as exc:  # a profile the estimator cannot read: the monitor still works
        return Plan(error=f"no estimate: {exc}")
    have = len(gpus) or None
    fix = next((s for s in est.suggestions if s.fits and not (
        have and s.change.get("num_gpus", 0) > have)), None)
    return Plan(profile=profile, estimate=est, fix=fix)


def appended(old: list[str], new: list[str]) -> list[str] | None:
    """The lines ``new`` (a later tail of the same log) adds after ``old``; None when the two
    do not line up (another rank, a rotated log) and the view must be redrawn."""
    if not old:
        return None
    for k in range(min(len(old), len(new)), 0, -1):  # the longest overlap first
        if old[-k:] == new[:k]:
            return new[k:]
    return None


def short_name(name: str | None) -> str:
    """"NVIDIA H100 80GB HBM3" -> "H100 80GB HBM3": the panel's first line is short."""
    return (name or "").removeprefix("NVIDIA ").removeprefix("GeForce ")


def rank_state(rank, run_state: str, failed_rank: int | None = None) -> str:
    """What one rank's row says. A rank killed by a signal is "stopped" when the user stopped
    the run, or when torchrun ended it because another rank (``failed_rank``) failed: only the
    rank that failed reads "failed"."""
    if rank.exit_code is None:
        if run_state in ("failed", "stopped", "succeeded"):
            return "ended"
        return "running" if rank.pid else "starting"
    if rank.exit_code == 0:
        return "done"
    if rank.exit_code in (-15, -9) and (run_state == "stopped" or (
            run_state == "failed" and failed_rank is not None and rank.rank != failed_rank)):
        return "stopped"
    return "failed"


def _plain(value):
    """A typed sample record as the plain JSON its file holds."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(type(value).__name__)



class LogLines:
    """A rank's log followed from where the last read stopped, as display lines: a line
    redrawn with ``\\r`` (a progress bar) shows as its last drawing, without escape sequences
    or control characters (``printable``). ``output.log`` (stdout and stderr in the order
    written) when the run has it, else stdout.log and stderr.log."""

    def __init__(self, folder: Path | None) -> None:
        chosen = rank_logs(folder) if folder is not None else {}
        self.followers = [Follower(f.path, tail=LOG_TAIL) for f in chosen.values()]
        self.partial = [""] * len(self.followers)

    def read(self) -> list[str]:
        out: list[str] = []
        for i, follower in enumerate(self.followers):
            text = follower.read()
            if not text:
                continue
            if follower.restarted:
                self.partial[i] = ""
            pieces = (self.partial[i] + text).split("\n")
            self.partial[i] = pieces.pop()
            for piece in pieces:
                drawn = [p for p in piece.split("\r") if p.strip()]
                out.append(printable(drawn[-1]) if drawn else "")  # no ESC reaches the terminal
        return out


class MonitorScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop run"),
        Binding("escape,b", "leave", "Leave (keeps running)"),
        Binding("escape,b", "back", "Back"),
        Binding("v", "view", "Log/loss/memory"),
        Binding("f", "fix", "Fix in wizard", show=False),
        Binding("[", "rank(-1)", "Prev rank", show=False),
        Binding("]", "rank(1)", "Next rank", show=False),
    ]

    def __init__(self, run_dir, *, standalone: bool = False) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.standalone = standalone
        self.status = None
        self.plan: Plan | None = None
        self.progress: dict | None = None
        self.estimate: dict | None = None
        self.samples: tuple = ()
        self.selected_rank = 0
        self.view = "log"
        self.gone = False
        self._log_lines: list[str] = []
        self._rank_keys: list[int] = []
        self._columns: tuple | None = None
        self._shown: dict = {}  # selector -> what it shows now
        self._cells: dict = {}  # (rank, column) -> what the cell shows now
        self._timer = None
        self._final_read = False
        self._failure_shown = False  # the failing rank's log is opened once, then the user leads
        # owned by the poll worker (one at a time: exclusive)
        self._samples_file = Follower(self.run_dir / "samples.jsonl", tail=2 << 20)
        self._samples: deque = deque(maxlen=HISTORY)
        self._samples_partial = ""
        self._reading = threading.Lock()
        self._log_reader: LogLines | None = None
        self._log_rank: int | None = None
        self._estimate_read = False
        self._timed = False
        self.estimated_tokens_per_s: float | None = None  # the time model's, for this box

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"reading {self.run_dir}…", id="run-state")
        yield Static("", id="run-progress")
        yield Static("", id="run-failure")
        yield DataTable(id="rank-table", cursor_type="row", show_cursor=True)
        yield Static("log of rank 0", id="log-title")
        yield Log(id="rank-log", auto_scroll=True, max_lines=2000)
        yield RunPlot(id="run-plot")
        yield KeysFooter()  # a running run's stop, leave, view, screens, quit: all at 80 columns

    def on_mount(self) -> None:
        self.sub_title = f"Monitor {self.run_dir.name}"
        self.query_one("#run-failure").display = False
        self.query_one("#run-plot").display = False
        self._poll(first=True)

    # -- reading the run directory -------------------------------------------------------
    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False)
    def _poll(self, first: bool = False) -> None:
        with self._reading:  # a read asked for by a new rank may start while one still runs
            self._read(first)

    def _read(self, first: bool) -> None:
        import json

        gone = f"The run directory {self.run_dir} is gone (deleted or moved)."
        try:
            status = read_status(self.run_dir)
        except TrainwizError as exc:
            self.post_message(RunPolled(None, error=gone if not self.run_dir.exists()
                                        else str(exc)))
            return
        if not self.run_dir.exists():  # read as a damaged run: it is simply gone
            self.post_message(RunPolled(None, error=gone))
            return
        if slurm_jobs.is_slurm_run(self.run_dir):  # every node's samples, merged
            self._samples.clear()
            self._samples.extend(json.loads(json.dumps(s, default=_plain))
                                 for s in read_samples(self.run_dir, last=HISTORY))
        else:
            self._read_samples()
        rank = self.selected_rank
        reset = False
        if self._log_reader is None or self._log_rank != rank or not self._log_reader.followers:
            out, _ = rank_log_paths(self.run_dir, rank)
            reader = LogLines(out.parent if out is not None else None)
            if reader.followers or self._log_reader is None or self._log_rank != rank:
                self._log_reader, self._log_rank, reset = reader, rank, True
        try:
            log = self._log_reader.read()
        except OSError as exc:
            log = [f"(log not readable: {exc})"]
        if not self._estimate_read:
            self.estimate = read_estimate(self.run_dir)
            self._estimate_read = self.estimate is not None or status.finished
        progress = read_progress(self.run_dir)
        samples = tuple(self._samples)
        plan = None
        if first or self.plan is None:
            gpus = samples[-1].get("gpus", []) if samples else []
            plan = load_plan(self.run_dir, status.num_processes, gpus, status.profile)
        self._time_the_plan(status, samples, plan or self.plan)
        self.post_message(RunPolled(status, samples, log, plan=plan, rank=rank, reset=reset,
                                    progress=progress, estimate=self.estimate))

    def _time_the_plan(self, status, samples: tuple, plan: Plan | None) -> None:
        """The time model's tokens/s for the plan on the run's GPUs, once, to set beside the
        measured tokens/s: only for real GPUs (a CPU run or a simulated box has nothing to
        compare it with)."""
        if self._timed or plan is None or plan.estimate is None or plan.profile is None:
            return
        if run_kind(status) != "gpu":
            self._timed = True
            return
        gpus = [g for g in (samples[-1].get("gpus", []) if samples else [])
                if not status.gpu_ids or g.get("index") in status.gpu_ids]
        if not gpus:
            return  # no sample yet: try again next read
        self._timed = True
        try:
            timed, _ = profile_time(plan.profile, plan.estimate, gpus)
        except Exception:  # noqa: BLE001 - a plan the time model cannot price: nothing shown
            return
        if timed.estimated and timed.tokens_per_second:
            self.estimated_tokens_per_s = timed.tokens_per_second

    def _read_samples(self) -> None:
        import json

        text = self._samples_file.read()
        if self._samples_file.restarted:  # the supervisor trimmed the file: read it anew
            self._samples.clear()
            self._samples_partial = ""
        lines = (self._samples_partial + text).split("\n")
        self._samples_partial = lines.pop()  # a line being written right now: the rest comes
        for line in lines:
            try:
                self._samples.append(json.loads(line))
            except ValueError:  # not a sample (a torn line from a crash): left out
                continue

    @on(RunPolled)
    def _polled(self, message: RunPolled) -> None:
        if message.plan is not None:
            self.plan = message.plan
        if message.status is None:
            self.gone = True
            self._update("#run-state", Text(message.error or "run not readable", style="bold red"))
            # keep the last readings on screen; try again later in case it comes back
            self._schedule(POLL_S * 5)
            return
        self.gone = False
        was_finished = self.status is not None and self.status.finished
        self.status = message.status
        self.samples = message.samples
        self.progress = message.progress
        self.estimate = message.estimate
        if self.status.finished != was_finished:
            self.refresh_bindings()  # a finished run offers no stop and no "keeps running"
        self._show_state(message.status)
        self._show_progress(message.status)
        self._show_ranks(message.status, message.samples)
        if message.rank == self.selected_rank:
            self._show_log(message.log, message.reset)
        self._show_view()
        if not message.status.finished:
            self._schedule(POLL_S)
        elif not self._final_read:
            self._final_read = True  # one more read: the last log lines and samples
            self._schedule(POLL_S)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A read that failed in a way nobody foresaw: said, and tried again later."""
        if event.worker.group == "monitor" and event.state == WorkerState.ERROR:
            self.notify(f"Reading the run failed: {event.worker.error}", severity="error",
                        timeout=5, markup=False)
            self._schedule(POLL_S * 5)

    def _schedule(self, delay: float) -> None:
        """The next read, once: a read asked for meanwhile (a new rank) replaces it."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._poll)

    # -- what is shown ---------------------------------------------------------------------
    def memory(self) -> dict:
        status = self.status
        return memory_check(self.estimate, self.progress,
                            device=status.device if status else None,
                            simulated=bool(status and status.simulate))

    def _update(self, selector: str, text: Text) -> None:
        """Redraw a line only when what it says changed (the monitor stays cheap)."""
        key = (text.plain, tuple(text.spans))
        if self._shown.get(selector) != key:
            self._shown[selector] = key
            self.query_one(selector, Static).update(text)

    def _show_state(self, status) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        style = STATE_STYLE.get(status.state, "")
        text.append(f" {status.state.upper()} ", style=f"reverse {style}")
        if status.device == "cpu":  # CPU ranks: real host memory, whatever box is simulated
            text.append(" CPU run", style="bold")
        elif status.simulate:  # first, so that no width cuts it
            text.append(" ")
            text.append(f" SIMULATED {status.simulate} ", style="reverse yellow")
        text.append(f"  run {status.id}")
        if status.profile:
            text.append(f"  profile {status.profile}")
        if status.script:
            text.append(f"  {Path(status.script).name} {' '.join(status.args)}")
        self._update("#run-state", text)
        failure = self.query_one("#run-failure", Static)
        box = Text()
        if status.failure is not None or status.state == "failed":
            fail = status.failure
            box.append("FAILED", style="bold red")
            if fail is not None:  # the words `trainwiz runs` and `runs show` use
                box.append(f" — {failure_summary(fail)}")
            if status.message:
                box.append(f"\n{status.message}", style="bright_black")
            if self.plan is not None and self.plan.fix is not None:
                box.append("\nA change that fits: ", style="bold")
                box.append(f"{self.plan.fix.note} → {format_bytes(self.plan.fix.total)} per GPU")
                if not self.standalone:
                    box.append("  (press f to open it in the wizard)", style="bold")
        elif status.message and status.finished:
            box.append(status.message, style="yellow")
        mem = self.memory()
        if (run_kind(status) == "gpu" and not status.finished and self.samples
                and not mem["comparison"] and (mem["reason"] or "").startswith("no per-process")):
            if box:
                box.append("\n")
            box.append(mem["reason"], style="yellow")
        if mem["over"]:  # two screen lines, cut with …; `trainwiz runs show` has all of it
            width = max((self.size.width or 80) - 3, 20)
            over = Text(memory_over_text(mem) or "", style="bold red")
            likely = Text("likely: " + "; ".join(mem["likely"]).replace(" (plan: ", " ("))
            for line in (over, likely):
                line.truncate(width, overflow="ellipsis")
                if box:
                    box.append("\n")
                box.append_text(line)
        self._update("#run-failure", box)
        failure.display = bool(box)

    def _show_progress(self, status) -> None:
        prog = (self.progress or {}).get("progress")
        parts = progress_parts(prog, finished=status.finished,
                               estimated_tokens_per_s=self.estimated_tokens_per_s)
        text = Text(no_wrap=True, overflow="ellipsis")
        if parts:
            text.append(" · ".join(parts))
        elif self.progress is None and status.finished:
            text.append("no progress recorded for this run", style="bright_black")
        else:
            text.append("no progress read from rank 0's output yet (step/loss lines, tqdm, "
                        "HF Trainer logs, TRAINWIZ lines)", style="bright_black")
        self._update("#run-progress", text)

    def _columns_for(self, kind: str, wide: bool) -> tuple:
        memory = {"cpu": "host memory (RSS)", "sim": "SIMULATED GPU GiB",
                  "gpu": "GPU memory GiB"}[kind]
        cols = ("rank", "pid", "GPU" if kind != "cpu" else "dev", "state", memory,
                "est. peak", "exit")
        if wide and kind != "cpu":
            cols = cols[:5] + ("util", "temp", "power") + cols[5:]
        return cols

    def _show_ranks(self, status, samples: tuple) -> None:
        table = self.query_one("#rank-table", DataTable)
        kind = run_kind(status)
        wide = self.size.width >= WIDE
        columns = self._columns_for(kind, wide)
        if columns != self._columns:
            self._columns = columns
            table.clear(columns=True)
            table.add_columns(*columns)
            self._rank_keys = []
        latest = samples[-1] if samples else {}
        gpus = {g.get("index"): g for g in latest.get("gpus", []) or []}
        ranks_now = {r.get("rank"): r for r in latest.get("ranks", []) or []}
        peaks = {p["rank"]: p for p in (self.progress or {}).get("peaks", [])}
        mem = self.memory()
        est_total = mem.get("estimated_peak")
        over = {g["rank"]: g for g in mem["per_gpu"]}
        bar_w = 8 if wide else 6
        keys, rows = [], []
        for r in status.ranks:
            keys.append(r.rank)
            local = r.local_rank if r.local_rank is not None else r.rank
            now = ranks_now.get(r.rank, {})
            gpu_index = now.get("gpu")
            if gpu_index is None and kind != "cpu":
                ids = status.gpu_ids
                gpu_index = ids[local] if ids and local < len(ids) else local
            gpu = gpus.get(gpu_index, {}) if kind != "cpu" else {}
            state = rank_state(r, status.state,
                               status.failure.rank if status.failure is not None else None)
            style = {"failed": "bold red", "running": "green", "done": "",
                     "stopped": ""}.get(state, "yellow")
            cell = self._memory_cell(kind, status, now, gpu, peaks.get(r.rank), est_total, bar_w)
            row = [Text(str(r.rank)), Text(str(r.pid or "-")),
                   Text("cpu" if kind == "cpu" else str(gpu_index)), Text(state, style=style), cell]
            if len(columns) > 7:
                live = not status.finished
                row += [Text(fmt.pct(gpu.get("utilization")) if live else "-"),
                        Text(fmt.temp(gpu.get("temperature")) if live else "-"),
                        Text(fmt.watts(gpu.get("power_draw")) if live else "-")]
            row += [self._estimate_cell(kind, est_total, over.get(r.rank)),
                    Text("-" if r.exit_code is None else str(r.exit_code))]
            rows.append(row)
        if keys != self._rank_keys:
            self._rank_keys = keys
            self._cells = {}
            table.clear()
            for key, row in zip(keys, rows):
                table.add_row(*row, key=str(key))
                self._cells.update({(key, i): (v.plain, tuple(v.spans)) for i, v in enumerate(row)})
        else:
            for key, row in zip(keys, rows):
                for i, (col, value) in enumerate(zip(table.ordered_columns, row)):
                    shown = (value.plain, tuple(value.spans))
                    if self._cells.get((key, i)) != shown:  # only what changed is redrawn
                        self._cells[(key, i)] = shown
                        table.update_cell(str(key), col.key, value)
        failure = getattr(status, "failure", None)
        if failure is not None and not self._failure_shown and failure.rank in keys:
            self._failure_shown = True  # show the rank that failed, not rank 0
            table.move_cursor(row=keys.index(failure.rank))

    def _memory_cell(self, kind, status, now: dict, gpu: dict, peak: dict | None,
                     est_total, bar_w: int) -> Text:
        """Memory now (a bar against the GPU, the estimate marked ◆); once the run has ended,
        the peak it reached, never the last reading as if it were still held."""
        if status.finished:
            value = (peak or {}).get("host_peak" if kind == "cpu" else "gpu_peak")
            if kind == "sim":
                value = None  # a simulated GPU's peak is not a measurement
            if value is None:
                return Text("ended", style="bright_black")
            return Text("peak " + (format_bytes(value) if kind == "cpu"
                                   else format_bytes(value, unit="GiB", bare=True)))
        if kind == "cpu":
            return Text(format_bytes(now.get("rss")))
        used = now.get("gpu_memory") if kind == "gpu" else None
        approx = used is None and kind == "gpu"
        if used is None:
            used = gpu.get("memory_used")  # the GPU's (simulated, or no per-process reading)
        total = gpu.get("memory_total")
        text = usage_bar(used, total, bar_w, marker=est_total if kind == "gpu" else None)
        text.append(f" {'≈' if approx else ''}{format_bytes(used, unit='GiB', bare=True)}"
                    f"/{format_bytes(total, 0, 'GiB', bare=True)}")
        return text

    @staticmethod
    def _estimate_cell(kind: str, est_total, over: dict | None) -> Text:
        if kind != "gpu":  # no comparison, never a made-up one; a simulated box says so
            return Text("simulated" if kind == "sim" else "no GPU", style="bright_black")
        if est_total is None:
            return Text("unknown", style="bright_black")
        text = Text(f"◆{format_bytes(est_total, unit='GiB', bare=True)}")
        if over is not None:
            pct = 100 * (over["ratio"] - 1)
            text.append(f" {pct:+.0f}%", style="bold red" if over["over"] else "green")
        return text

    def _show_log(self, lines: list[str], reset: bool) -> None:
        log = self.query_one("#rank-log", Log)
        if reset or (lines and not self._log_lines):  # a new rank, or the first real lines
            log.clear()
            self._log_lines = []
        if lines:
            log.write_lines(lines)  # only what the rank wrote since the last read
            self._log_lines = (self._log_lines + lines)[-2000:]
        elif reset:
            log.write_line("(no output yet)")
        if lines or reset:
            self.call_after_refresh(log.scroll_end, animate=False)

    def _view_title(self) -> str:
        keys = "v: next view, [ ]: rank"
        if self.view == "log":
            ended = self.status is not None and self.status.finished
            return f"log of rank {self.selected_rank} ({'' if ended else 'following; '}{keys})"
        if self.view == "loss":
            return f"loss by step, from rank 0's output ({keys})"
        mem = self.memory() if self.status is not None else {"comparison": False, "reason": ""}
        # what is drawn first, then the estimate line, then the keys: a narrow terminal
        # cuts the keys (the log view's title names them too) and shows "…"
        what = {"cpu": "host memory per rank (GiB)", "sim": "SIMULATED GPU memory (GiB)",
                "gpu": "GPU memory per rank (GiB)"}[run_kind(self.status)] \
            if self.status is not None else "memory"
        note = "; = is the estimated peak" if mem["comparison"] or (
            mem.get("estimated_peak") and run_kind(self.status) == "gpu") else (
            f"; {mem['reason'].split(':')[0]}: no estimate line" if mem.get("reason") else "")
        return f"{what}{note} ({keys})"

    def _show_view(self) -> None:
        self._update("#log-title", Text(self._view_title(), no_wrap=True, overflow="ellipsis"))
        log, plot = self.query_one("#rank-log", Log), self.query_one("#run-plot", RunPlot)
        log.display = self.view == "log"
        plot.display = self.view != "log"
        if self.view == "loss":
            points = ((self.progress or {}).get("progress") or {}).get("losses") or []
            plot.show(PlotData(title="loss", xlabel="step", ylabel="loss",
                               series=(("loss", tuple(p[0] for p in points),
                                        tuple(p[1] for p in points)),),
                               empty="no loss read from rank 0's output yet"))
        elif self.view == "memory":
            plot.show(self._memory_plot())

    def _memory_plot(self) -> PlotData:
        status, samples = self.status, self.samples
        kind = run_kind(status) if status is not None else "gpu"
        t0 = samples[0].get("t", 0) if samples else 0
        series = []
        if kind == "cpu":
            for r in (samples[-1].get("ranks", []) if samples else []):
                pts = [(s.get("t", 0) - t0, x.get("rss")) for s in samples
                       for x in s.get("ranks", []) if x.get("rank") == r.get("rank")]
                pts = [(t, v / fmt.GIB) for t, v in pts if v is not None]
                series.append((f"rank {r.get('rank')}", tuple(p[0] for p in pts),
                               tuple(p[1] for p in pts)))
        elif kind == "gpu" and samples and any(r.get("gpu_memory") is not None for s in samples
                                               for r in s.get("ranks", [])):
            ranks = sorted({r.get("rank") for s in samples for r in s.get("ranks", [])
                            if r.get("gpu_memory") is not None})
            for rank in ranks:
                pts = [(s.get("t", 0) - t0, x["gpu_memory"] / fmt.GIB) for s in samples
                       for x in s.get("ranks", [])
                       if x.get("rank") == rank and x.get("gpu_memory") is not None]
                series.append((f"rank {rank}", tuple(p[0] for p in pts), tuple(p[1] for p in pts)))
        else:  # a simulated box, or no per-process reading: each GPU's memory used
            wanted = set(status.gpu_ids) if status is not None and status.gpu_ids else None
            indices = sorted({g.get("index") for s in samples for g in s.get("gpus", [])
                              if wanted is None or g.get("index") in wanted})
            for index in indices:
                pts = [(s.get("t", 0) - t0, g.get("memory_used")) for s in samples
                       for g in s.get("gpus", []) if g.get("index") == index]
                pts = [(t, v / fmt.GIB) for t, v in pts if v is not None]
                label = f"{'sim. ' if kind == 'sim' else ''}GPU {index}"
                series.append((label, tuple(p[0] for p in pts), tuple(p[1] for p in pts)))
        mem = self.memory() if status is not None else {}
        est = mem.get("estimated_peak") if kind == "gpu" else None
        title = {"cpu": "host memory (CPU run: no GPU comparison)",
                 "sim": "SIMULATED GPU memory (no GPU comparison)",
                 "gpu": "GPU memory against the estimate"}[kind]
        return PlotData(title=title, xlabel="seconds", ylabel="GiB", series=tuple(series),
                        estimate=est / fmt.GIB if est else None,
                        empty="the run ended before a memory sample was taken"
                        if status is not None and status.finished else "no memory samples yet")

    @on(DataTable.RowHighlighted, "#rank-table")
    def _rank_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        rank = int(event.row_key.value)
        if rank != self.selected_rank:
            self.selected_rank = rank
            self._update("#log-title", Text(f"log of rank {rank} (loading…)"))
            self._poll()

    def action_rank(self, step: int) -> None:
        if not self._rank_keys:
            return
        table = self.query_one("#rank-table", DataTable)
        table.move_cursor(row=(table.cursor_row + step) % len(self._rank_keys))

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        if self.status is not None:
            self._show_view()

    # -- actions ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        finished = self.status is not None and self.status.finished
        if action in ("stop", "leave"):
            return not finished
        if action == "back":
            return finished
        return True

    def palette_commands(self):
        from textual.app import SystemCommand

        if self.status is None or not self.status.finished:
            yield SystemCommand("Stop the run", "Stop this run (asks first)", self.action_stop)
            yield SystemCommand("Leave the monitor", "The run keeps going", self.action_leave)
        else:
            yield SystemCommand("Back", "Close the monitor of this finished run",
                                self.action_back)
        if not self.standalone and self.plan is not None and self.plan.fix is not None:
            yield SystemCommand("Open the fitting change in the wizard", self.plan.fix.note,
                                self.action_fix)

    def action_stop(self) -> None:
        if self.status is not None and self.status.finished:
            self.notify(f"The run has already {self.status.state}.", timeout=3)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_run()

        self.app.push_screen(ConfirmScreen(
            f"Stop run {self.run_dir.name}? Its ranks get SIGTERM, then SIGKILL.",
            yes="Stop the run", no="Keep it running"), answered)

    @work(thread=True, exclusive=True, group="stop", exit_on_error=False)
    def stop_run(self) -> None:
        try:
            status = stop_run(self.run_dir)  # the module's stop_run (launchers), not this method
        except Exception as exc:
            self.post_message(RunStopped(f"Could not stop the run: {exc}", error=True))
            return
        self.post_message(RunStopped(f"Run {status.id} {status.state}."))

    @on(RunStopped)
    def _stopped(self, message: RunStopped) -> None:
        self.notify(message.text, severity="error" if message.error else "information",
                    markup=False)
        self._poll()

    def action_leave(self) -> None:
        if self.standalone:
            self.app.exit(return_code=0, message=f"The run keeps going; `trainwiz attach "
                          f"{self.run_dir.name}` brings this monitor back.")
            return
        self.app.pop_screen()
        self.notify("The run keeps going; attach again from Runs.", timeout=3)

    def action_back(self) -> None:
        if self.standalone:
            self.app.exit(return_code=self.app._code() if hasattr(self.app, "_code") else 0)
            return
        self.app.pop_screen()

    async def action_fix(self) -> None:
        if self.standalone or self.plan is None or self.plan.fix is None:
            self.notify("No fitting change to open.", severity="warning", timeout=3)
            return
        self.app.pop_screen()
        await self.app.open_in_wizard(profile=self.plan.profile,
                                      changes=dict(self.plan.fix.change))
