"""Errors every layer may raise. The CLI turns them into one clear message and an exit code."""

from __future__ import annotations


class TrainwizError(Exception):
    """A problem the user can fix. ``str(err)`` is the whole message shown to them.

    ``exit_code`` 2 is bad input (a file, a field, an option); the CLI prints
    ``trainwiz: <message>`` on stderr and exits with it.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(TrainwizError):
    """Bad command-line input: an unknown model, a zero batch, an impossible option pair."""


class NeedsConfirmation(TrainwizError):
    """A check that the user may overrule (``--yes``, or "Launch anyway" in the app): the plan
    probably does not fit the GPUs as they are now."""
