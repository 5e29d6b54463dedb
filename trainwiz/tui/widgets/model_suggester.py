"""Completion for the wizard's model field: catalog names, or file paths when it looks like one."""

from __future__ import annotations

from textual.suggester import SuggestFromList, Suggester

from trainwiz.tui.widgets.path_suggester import PathSuggester

PATH_STARTS = ("/", "./", "../", "~")


class ModelSuggester(Suggester):
    def __init__(self, names: list[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.catalog = SuggestFromList(names, case_sensitive=False)
        self.paths = PathSuggester()

    async def get_suggestion(self, value: str) -> str | None:
        if value.startswith(PATH_STARTS):
            return await self.paths.get_suggestion(value)
        return await self.catalog.get_suggestion(value.casefold())
