"""The run monitor: per-GPU memory against the estimate, the ranks, the selected rank's log.

Everything comes from the run directory (``trainwiz.launchers``: status, samples, logs), read
by a one-shot thread worker; the next read is scheduled only after the last one was shown.
The monitor never needs to be the process that launched the run, and leaving it never stops
the run: stop (with a confirmation) and leave are separate keys.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, Static
from textual.worker import Worker, WorkerState

from trainwiz.tui import fmt
from trainwiz.tui.widgets.gpu_monitor import GpuMonitorPanel, GpuTrace

POLL_S = 1.0
HISTORY = 120
LOG_LINES = 200
STATE_STYLE = {"starting": "yellow", "running": "green", "succeeded": "bold green",
               "failed": "bold red", "stopped": "yellow"}


class RunPolled(Message):
    def __init__(self, status, samples: list, log: list[str], error: str | None = None,
                 plan=None) -> None:
        super().__init__()
        self.status = status
        self.samples = samples
        self.log = log
        self.error = error
        self.plan = plan

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunPolled) and message.plan is None


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
    """The estimate for the run's frozen profile (a thread worker calls this)."""
    try:
        from trainwiz.estimator import estimate, model_from_params, resolve_model
        from trainwiz.profiles import estimate_request, read_profile_file
        from trainwiz.profiles.estimate_io import model_argument
    except ImportError as exc:
        return Plan(error=f"estimate not available ({exc})")
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


def rank_state(rank, run_state: str) -> str:
    if rank.exit_code is None:
        if run_state in ("failed", "stopped", "succeeded"):
            return "ended"
        return "running" if rank.pid else "starting"
    if rank.exit_code == 0:
        return "done"
    if run_state == "stopped" and rank.exit_code in (-15, -9):  # ended by the user's stop
        return "stopped"
    return "failed"


class MonitorScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop run"),
        Binding("escape,b", "leave", "Leave (keeps running)"),
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
        self.selected_rank = 0
        self.gone = False
        self._log_lines: list[str] = []
        self._rank_keys: list[int] = []
        self._timer = None
        self._final_read = False
        self._failure_shown = False  # the failing rank's log is opened once, then the user leads

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"reading {self.run_dir}…", id="run-state")
        yield Static("", id="run-failure")
        yield VerticalScroll(id="gpu-panels")
        table = DataTable(id="rank-table", cursor_type="row", show_cursor=True)
        table.add_columns("rank", "pid", "GPU", "state", "exit")
        yield table
        yield Static("log of rank 0", id="log-title")
        yield Log(id="rank-log", auto_scroll=True, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Monitor {self.run_dir.name}"
        self.query_one("#run-failure").display = False
        self._poll(first=True)

    # -- reading the run directory -------------------------------------------------------
    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False)
    def _poll(self, first: bool = False) -> None:
        from trainwiz.errors import TrainwizError
        try:
            from trainwiz.launchers import read_samples, read_status, tail_log
        except ImportError as exc:
            self.post_message(RunPolled(None, [], [], f"the launcher is not available ({exc})"))
            return
        try:
            status = read_status(self.run_dir)
        except TrainwizError as exc:
            gone = not self.run_dir.exists()
            self.post_message(RunPolled(None, [], [], (
                f"The run directory {self.run_dir} is gone (deleted or moved)." if gone
                else str(exc))))
            return
        try:
            samples = read_samples(self.run_dir, last=HISTORY)
        except (OSError, TrainwizError):
            samples = []
        try:
            log = tail_log(self.run_dir, rank=self.selected_rank, n=LOG_LINES)
        except (OSError, TrainwizError) as exc:
            log = [f"(log not readable: {exc})"]
        plan = None
        if first or self.plan is None:
            gpus = samples[-1].get("gpus", []) if samples else []
            plan = load_plan(self.run_dir, status.num_processes, gpus, status.profile)
        self.post_message(RunPolled(status, samples, log, plan=plan))

    @on(RunPolled)
    def _polled(self, message: RunPolled) -> None:
        if message.plan is not None:
            self.plan = message.plan
        if message.status is None:
            self.gone = True
            state = self.query_one("#run-state", Static)
            state.update(Text(message.error or "run not readable", style="bold red"))
            # keep the last readings on screen; try again later in case it comes back
            self._schedule(POLL_S * 5)
            return
        self.gone = False
        self.status = message.status
        self._show_state(message.status)
        self._show_gpus(message.status, message.samples)
        self._show_ranks(message.status)
        self._show_log(message.log)
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
                        timeout=5)
            self._schedule(POLL_S * 5)

    def _schedule(self, delay: float) -> None:
        """The next read, once: a read asked for meanwhile (a new rank) replaces it."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._poll)

    # -- panels ----------------------------------------------------------------------------
    def _show_state(self, status) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        style = STATE_STYLE.get(status.state, "")
        text.append(f" {status.state.upper()} ", style=f"reverse {style}")
        text.append(f"  run {status.id}")
        if status.profile:
            text.append(f"  profile {status.profile}")
        if status.script:
            text.append(f"  {Path(status.script).name} {' '.join(status.args)}")
        if status.simulate:
            text.append(f"  (simulated {status.simulate})", style="yellow")
        self.query_one("#run-state", Static).update(text)
        failure = self.query_one("#run-failure", Static)
        if status.failure is not None or (status.state == "failed"):
            fail = status.failure
            box = Text()
            box.append("FAILED", style="bold red")
            if fail is not None:
                box.append(f" — rank {fail.rank if fail.rank is not None else '?'}"
                           + (f" on {fail.node}" if fail.node else "")  # a Slurm run's node
                           + f", exit code {fail.exit_code if fail.exit_code is not None else '?'}")
                box.append(f"\n{fail.message}")
                box.append("\nout of memory: ")
                box.append("YES" if fail.oom else "no", style="bold red" if fail.oom else "")
            if status.message:
                box.append(f"\n{status.message}", style="bright_black")
            if self.plan is not None and self.plan.fix is not None:
                box.append("\nA change that fits: ", style="bold")
                box.append(f"{self.plan.fix.note} → {fmt.gib(self.plan.fix.total)} GiB per GPU")
                if not self.standalone:
                    box.append("  (press f to open it in the wizard)", style="bold")
            failure.update(box)
            failure.display = True
        elif status.message and status.finished:
            failure.update(Text(status.message, style="yellow"))
            failure.display = True
        else:
            failure.display = False

    def _show_gpus(self, status, samples: list) -> None:
        traces: list[GpuTrace] = []
        est_total = (self.plan.estimate.per_gpu.total
                     if self.plan is not None and self.plan.estimate is not None else None)
        latest = samples[-1] if samples else {}
        wanted = set(status.gpu_ids) if status.gpu_ids else None
        for gpu in latest.get("gpus", []) or []:
            index = gpu.get("index")
            if wanted is not None and index not in wanted:
                continue
            history = tuple(next((g.get("memory_used") for g in s.get("gpus", [])
                                  if g.get("index") == index), None) for s in samples)
            traces.append(GpuTrace(
                label=f"GPU {index} {short_name(gpu.get('name'))}".rstrip(),
                used=gpu.get("memory_used"), total=gpu.get("memory_total"), history=history,
                utilization=gpu.get("utilization"), temperature=gpu.get("temperature"),
                power=gpu.get("power_draw"), power_limit=gpu.get("power_limit"),
                estimate=est_total))
        if not traces:  # a CPU run: the ranks' host memory is what there is to watch
            for rank in latest.get("ranks", []) or []:
                r = rank.get("rank")
                history = tuple(next((x.get("rss") for x in s.get("ranks", [])
                                      if x.get("rank") == r), None) for s in samples)
                traces.append(GpuTrace(label=f"rank {r} host memory (RSS; CPU run)",
                                       used=rank.get("rss"), total=None, history=history))
        container = self.query_one("#gpu-panels", VerticalScroll)
        panels = list(container.query(GpuMonitorPanel))
        if len(panels) != len(traces):
            container.remove_children()
            panels = [GpuMonitorPanel() for _ in traces]
            container.mount_all(panels)
            if not traces:
                container.mount(Static("no memory samples yet", classes="hint"))
        for panel, trace in zip(panels, traces):
            panel.trace = trace
        container.styles.height = min(max(len(traces), 1) * 2, 8)

    def _show_ranks(self, status) -> None:
        table = self.query_one("#rank-table", DataTable)
        keys = [r.rank for r in status.ranks]
        rows = []
        for r in status.ranks:
            if status.device == "cpu" and not status.simulate:
                gpu = "cpu"
            elif status.gpu_ids and r.local_rank is not None and r.local_rank < len(status.gpu_ids):
                gpu = str(status.gpu_ids[r.local_rank])
            else:
                gpu = str(r.local_rank if r.local_rank is not None else r.rank)
            state = rank_state(r, status.state)
            style = {"failed": "bold red", "running": "green", "done": "",
                     "stopped": ""}.get(state, "yellow")
            rows.append((str(r.rank), str(r.pid or "-"), gpu, Text(state, style=style),
                         "-" if r.exit_code is None else str(r.exit_code)))
        if keys != self._rank_keys:
            self._rank_keys = keys
            table.clear()
            for key, row in zip(keys, rows):
                table.add_row(*row, key=str(key))
        else:
            for key, row in zip(keys, rows):
                for col, value in zip(table.ordered_columns, row):
                    table.update_cell(str(key), col.key, value)
        table.styles.height = min(len(rows) + 1, 6)
        failure = getattr(status, "failure", None)
        if failure is not None and not self._failure_shown and failure.rank in keys:
            self._failure_shown = True  # show the rank that failed, not rank 0
            table.move_cursor(row=keys.index(failure.rank))

    def _show_log(self, lines: list[str]) -> None:
        if lines == self._log_lines:
            return
        log = self.query_one("#rank-log", Log)
        new = appended(self._log_lines, lines)
        if new is not None and self._log_lines:
            log.write_lines(new)  # the usual case: only what the rank wrote since
        else:
            log.clear()
            log.write_lines(lines or ["(no output yet)"])
        self._log_lines = list(lines)
        # the rank table and panels may resize after this write: follow the end once laid out
        self.call_after_refresh(log.scroll_end, animate=False)
        self.query_one("#log-title", Static).update(
            f"log of rank {self.selected_rank} (following; select a rank above, or [ ])")

    @on(DataTable.RowHighlighted, "#rank-table")
    def _rank_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        rank = int(event.row_key.value)
        if rank != self.selected_rank:
            self.selected_rank = rank
            self._log_lines = []
            self.query_one("#log-title", Static).update(f"log of rank {rank} (loading…)")
            self._poll()

    def action_rank(self, step: int) -> None:
        if not self._rank_keys:
            return
        table = self.query_one("#rank-table", DataTable)
        table.move_cursor(row=(table.cursor_row + step) % len(self._rank_keys))

    # -- actions ---------------------------------------------------------------------------
    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Stop the run", "Stop this run (asks first)", self.action_stop)
        yield SystemCommand("Leave the monitor", "The run keeps going", self.action_leave)
        if not self.standalone and self.plan is not None and self.plan.fix is not None:
            yield SystemCommand("Open the fitting change in the wizard", self.plan.fix.note,
                                self.action_fix)

    def action_stop(self) -> None:
        from trainwiz.tui.screens.confirm import ConfirmScreen

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
            from trainwiz.launchers import stop_run
            status = stop_run(self.run_dir)
        except Exception as exc:
            self.post_message(RunStopped(f"Could not stop the run: {exc}", error=True))
            return
        self.post_message(RunStopped(f"Run {status.id} {status.state}."))

    @on(RunStopped)
    def _stopped(self, message: RunStopped) -> None:
        self.notify(message.text, severity="error" if message.error else "information")
        self._poll()

    def action_leave(self) -> None:
        if self.standalone:
            self.app.exit(return_code=0, message=f"The run keeps going; `trainwiz attach "
                          f"{self.run_dir.name}` brings this monitor back.")
            return
        self.app.pop_screen()
        self.notify("The run keeps going; attach again from Runs.", timeout=3)

    async def action_fix(self) -> None:
        if self.standalone or self.plan is None or self.plan.fix is None:
            self.notify("No fitting change to open.", severity="warning", timeout=3)
            return
        self.app.pop_screen()
        await self.app.open_in_wizard(profile=self.plan.profile,
                                      changes=dict(self.plan.fix.change))
