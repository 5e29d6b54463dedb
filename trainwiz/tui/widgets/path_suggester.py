"""Completion of file paths for an Input; the folder is listed off the event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from textual.suggester import Suggester


def _complete(value: str) -> str | None:
    path = Path(os.path.expanduser(value))
    folder, stem = (path, "") if value.endswith(os.sep) else (path.parent, path.name)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in names:
        if name.startswith(stem) and (stem.startswith(".") or not name.startswith(".")):
            completed = value + name[len(stem):]
            if (folder / name).is_dir():
                completed += os.sep
            return completed if completed != value else None
    return None


class PathSuggester(Suggester):
    """Suggests the first entry of the typed folder that starts with what was typed."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        return await asyncio.to_thread(_complete, value)
