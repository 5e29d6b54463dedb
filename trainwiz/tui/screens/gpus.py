"""Home screen: every GPU with its memory, utilization, temperature, power and processes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from trainwiz.tui import fmt
from trainwiz.tui.widgets.gpu_card import GpuCard
from trainwiz.units import format_bytes


def host_line(host, source: str, count: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if host is not None:
        text.append("host ", style="bold")
        text.append(f"{host.cpu_count or fmt.NA} CPUs  RAM "
                    f"{format_bytes(host.ram_available, unit='GiB', bare=True)} free of "
                    f"{format_bytes(host.ram_total, unit='GiB')}")
    text.append(f"   {count} GPU{'s' if count != 1 else ''}", style="bold")
    return text


class GpusScreen(Screen):
    """The dashboard; it only shows what the app's hardware worker posts."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="mode-banner")
        yield Static("probing GPUs…", id="host-line")
        yield VerticalScroll(id="gpu-list")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "GPUs"
        self.watch(self.app, "gpus", self._show_gpus)
        self.watch(self.app, "hardware_message", self._show_banner)
        self.watch(self.app, "source", self._show_banner)
        self.watch(self.app, "gpus_stale", self._show_stale)

    def _show_stale(self, stale: bool) -> None:
        for card in self.query(GpuCard):
            card.stale = stale
        self._show_banner()

    def _show_banner(self, _value=None) -> None:
        banner = self.query_one("#mode-banner", Static)
        source = self.app.source
        message = self.app.hardware_message
        banner.remove_class("planning", "warning")
        if source == "simulated":
            text = f"PLANNING MODE — simulated {self.app.simulate}, not this machine's GPUs"
            if self.app.gpus_stale and message:
                text += f"\n{message}"
            banner.update(Text(text))
            banner.add_class("planning")
        elif source in ("none", "unavailable"):
            banner.update(Text(f"PLANNING MODE — {message or 'no GPU found'}"))
            banner.add_class("planning")
        elif message:
            banner.update(Text(message))
            banner.add_class("warning")
        else:
            banner.update("")
        banner.display = bool(banner.has_class("planning") or banner.has_class("warning"))

    def _show_gpus(self, gpus: tuple) -> None:
        if not self.app.source:
            return
        self.query_one("#host-line", Static).update(
            host_line(self.app.host, self.app.source, len(gpus)))
        stale = self.app.gpus_stale
        container = self.query_one("#gpu-list", VerticalScroll)
        cards = list(container.query(GpuCard))
        if not gpus:
            if not container.query(".hint"):
                container.remove_children()
                container.mount(Static("No GPUs to show. The wizard still works: it plans "
                                       "against unknown memory, or start with --simulate "
                                       "8xH100-80GB to plan for a box you do not have.",
                                       classes="hint"))
            return
        if len(cards) != len(gpus):
            container.remove_children()
            container.mount_all([GpuCard(gpu, id=f"gpu-{gpu.index}") for gpu in gpus])
            return
        for card, gpu in zip(cards, gpus):
            card.gpu = gpu
            card.stale = stale
