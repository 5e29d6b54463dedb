"""Reading a profile file: each field checked against its one description (the schema's
dataclass fields), then the cross-field rules (rules.py); every problem named by file, line, key
and what is allowed, all of them at once.

The pieces, for those who import them from here: the checker and YAML with line numbers are
:mod:`trainwiz.checker`, the rules :mod:`trainwiz.profiles.rules`, writing
:mod:`trainwiz.profiles.dump`, the errors :mod:`trainwiz.profiles.errors`.
"""

from __future__ import annotations

import re
from typing import Any

from trainwiz import checker
from trainwiz.checker import Checker, KeyPath
from trainwiz.profiles.dump import dump_yaml, profile_to_dict
from trainwiz.profiles.errors import Problem, ProfileError, ProfileExistsError
from trainwiz.profiles.rules import LAUNCHER_OWNED_ENV, check_profile_gpus, check_rules
from trainwiz.profiles.schema import Profile

__all__ = ["LAUNCHER_OWNED_ENV", "NAME_RE", "Path_", "Problem", "ProfileError",
           "ProfileExistsError", "check_profile_gpus", "dump_yaml", "parse_yaml",
           "profile_from_dict", "profile_to_dict", "read_profile", "validate_profile"]

Path_ = KeyPath
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_yaml(text: str, source: str) -> tuple[Any, dict[KeyPath, int]]:
    """``yaml.safe_load`` the text; also return {key path: line} for messages. A syntax error
    becomes a ProfileError naming the file and line."""
    return checker.parse_yaml(text, source, error=ProfileError)


def profile_from_dict(data: Any, *, source: str, name: str,
                      lines: dict[KeyPath, int] | None = None) -> Profile:
    """Validate a parsed profile file and build the Profile. Raises ProfileError listing every
    problem (file, line, key, what is allowed)."""
    chk = Checker(source, lines, error=ProfileError)
    profile = read_profile(data, chk, name=name)
    chk.fail_if_any()
    return profile


def read_profile(data: Any, chk: Checker, *, name: str) -> Profile:
    """The Profile from a parsed mapping, with each field and combination problem added to
    ``chk`` rather than raised (for a reader with problems of its own to report with them)."""
    # Keep going with the fields that were fine: impossible combinations are reported together
    # with type errors, so one edit fixes the file.
    profile = Profile(name=name, **(chk.read({} if data is None else data, Profile) or {}))
    check_rules(profile, chk)
    return profile


def validate_profile(profile: Profile, *, source: str | None = None) -> Profile:
    """Check a Profile built in code (the wizard, the app) the way a file is checked."""
    return profile_from_dict(profile_to_dict(profile), source=source or f"profile '{profile.name}'",
                             name=profile.name)
