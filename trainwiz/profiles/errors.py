"""The errors of profile files: the checker's (file, line, key, what is allowed), named for them."""

from __future__ import annotations

from trainwiz.checker import CheckError, Problem

__all__ = ["Problem", "ProfileError", "ProfileExistsError"]


class ProfileError(CheckError):
    """A profile that cannot be read, saved or used. ``str(err)`` names the file, line and key."""

    unnamed = "<profile>"
    what = "a profile"


class ProfileExistsError(ProfileError, FileExistsError):
    """Saving would replace an existing file (pass force / --force). Also a FileExistsError."""

    def __init__(self, path) -> None:
        self.path = path
        super().__init__(f"{path} already exists; use --force to overwrite it", source=str(path))

    def __str__(self) -> str:
        return self.args[0] if self.args else ""
