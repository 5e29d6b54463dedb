"""Typed messages that thread workers post to the app; workers never touch widgets."""

from __future__ import annotations

from textual.message import Message


class HardwareDetected(Message):
    """The first probe finished: ``detection`` is a ``trainwiz.hardware.types.Detection``
    (or ``None`` when the hardware module could not be used; ``message`` says why)."""

    def __init__(self, detection, message: str | None = None) -> None:
        super().__init__()
        self.detection = detection
        self.message = message


class GpusSampled(Message):
    """A new sample of every GPU (a ``GpuSnapshot``), or the error that prevented it."""

    def __init__(self, snapshot, error: str | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.error = error

    def can_replace(self, message: Message) -> bool:  # a newer sample replaces a queued one
        return isinstance(message, GpusSampled)
