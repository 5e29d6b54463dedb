"""Text from outside (log lines, failure messages, process and GPU names) made safe to show on a
terminal. Markup is the other half and is handled by showing such text as ``rich.text.Text``."""

from __future__ import annotations

import re

# Terminal escape sequences (CSI "\x1b[2J", OSC "\x1b]0;title\x07", two-byte "\x1bc") as a
# whole, then any control character left (C0, DEL, C1) and the bidirectional overrides
# (U+202A-202E, U+2066-2069) that reorder what follows them: a log line or a name must not
# clear, recolour, retitle or reverse the terminal it is shown in.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                      r"|\x1b[ -/]*[0-~]|\x9b[0-?]*[ -/]*[@-~]")
_SPACES = re.compile(r"[\t\n\v\f\r]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` as it may be shown on a terminal: escape sequences removed whole, a tab or line
    break as a space, other control characters removed. The one place the app and the CLI clean
    such text."""
    if text.isprintable():
        return text
    return _CONTROLS.sub("", _SPACES.sub(" ", _ESCAPES.sub("", text)))


def first_control(text: str) -> str | None:
    """The first character of ``text`` a terminal would act on instead of showing, as Python
    writes it ('\\x1b'), or None: what the profile and box file checker refuses."""
    cleaned = printable(text)
    if cleaned == text:
        return None
    return next(repr(c)[1:-1] for c in text if c not in cleaned or not c.isprintable())
