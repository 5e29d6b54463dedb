"""Profile files on disk: where they live, how they are read, and how they are written (atomically).

Two stores: the user's (``platformdirs.user_config_dir("trainwiz")/profiles``, which is
``$XDG_CONFIG_HOME/trainwiz/profiles`` on Linux) and the project's (``.trainwiz/profiles`` of the
current directory or of its git root). A project profile wins over a user profile of the same
name. Anything that looks like a path to a ``.yaml``/``.yml`` file works wherever a NAME does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainwiz.atomic import TargetExistsError, is_disk_full, sweep_stale, write_atomic
from trainwiz.profiles.schema import Profile
from trainwiz.profiles.validate import (
    NAME_RE,
    ProfileError,
    ProfileExistsError,
    dump_yaml,
    parse_yaml,
    profile_from_dict,
    profile_to_dict,
    validate_profile,
)

PROJECT_SUBDIR = Path(".trainwiz") / "profiles"
SUFFIXES = (".yaml", ".yml")
MAX_NAME_LEN = 64  # the file name (NAME.yaml) and its temporary twin stay far below 255 bytes
MAX_PROFILE_BYTES = 1024 * 1024  # a profile is a few hundred bytes; anything this big is not one


def user_profiles_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("trainwiz", appauthor=False)) / "profiles"


def git_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding ``.git`` (a folder or a worktree file)."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def project_profile_dirs(cwd: Path | None = None) -> list[Path]:
    """Project stores searched, in order: the cwd's, then its git root's."""
    cwd = Path(cwd or Path.cwd()).resolve()
    dirs = [cwd / PROJECT_SUBDIR]
    root = git_root(cwd)
    if root is not None and root != cwd:
        dirs.append(root / PROJECT_SUBDIR)
    return dirs


def project_save_dir(cwd: Path | None = None) -> Path:
    """Where ``--project`` saves: an existing project store (cwd first), else the git root's,
    else the cwd's."""
    dirs = project_profile_dirs(cwd)
    for d in dirs:
        if d.is_dir():
            return d
    return dirs[-1]


def looks_like_path(name_or_path: str) -> bool:
    return (name_or_path.lower().endswith(SUFFIXES) or os.sep in name_or_path
            or (os.altsep is not None and os.altsep in name_or_path))


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LEN:
        raise ProfileError(f"profile name {name[:20]!r}... is {len(name)} characters long; "
                           f"allowed: at most {MAX_NAME_LEN}")
    if not NAME_RE.match(name) or name.lower().endswith(SUFFIXES):
        raise ProfileError(f"profile name {name!r} is not allowed: use letters, digits, '.', '_' "
                           "and '-', starting with a letter or digit, without .yaml (e.g. "
                           "fsdp-8gpu)")
    return name


def _name_from_path(path: Path) -> str:
    stem = path.name
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def read_profile_file(path: Path, *, name: str | None = None) -> Profile:
    """Read and validate one profile file."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise ProfileError(f"{source}: larger than {MAX_PROFILE_BYTES // 1024} KiB; a profile "
                               "is a short YAML file, so this one is not read", source=source)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{source}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{source}: cannot be read: {exc}") from None
    data, lines = parse_yaml(text, source)
    return profile_from_dict(data, source=source, name=name or _name_from_path(path), lines=lines)


def find_profile(name: str, *, cwd: Path | None = None) -> tuple[Path, str] | None:
    """(path, scope) of the profile NAME: project stores first, then the user store."""
    for d in project_profile_dirs(cwd):
        for suffix in SUFFIXES:
            if (d / f"{name}{suffix}").is_file():
                return d / f"{name}{suffix}", "project"
    d = user_profiles_dir()
    for suffix in SUFFIXES:
        if (d / f"{name}{suffix}").is_file():
            return d / f"{name}{suffix}", "user"
    return None


def resolve_profile_path(name_or_path: str, *, cwd: Path | None = None) -> Path:
    """The file a NAME or path refers to; ProfileError (listing the stores searched) if none."""
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_absolute():
            path = Path(cwd or Path.cwd()) / path
        if not path.is_file():
            raise ProfileError(f"{name_or_path}: no such profile file")
        return path
    found = find_profile(name_or_path, cwd=cwd)
    if found is None:
        searched = [str(d) for d in project_profile_dirs(cwd)] + [str(user_profiles_dir())]
        known = sorted({e.name for e in ProfileStore(cwd).list()})
        hint = ""
        if known:
            import difflib

            close = difflib.get_close_matches(name_or_path, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; profiles: {', '.join(known)}"
        raise ProfileError(f"no profile named '{name_or_path}'{hint}; looked in "
                           f"{', '.join(searched)}")
    return found[0]


def load_profile(name_or_path: str, *, cwd: Path | None = None) -> Profile:
    """Load a profile by NAME (project store, then user store) or by path to a YAML file."""
    path = resolve_profile_path(name_or_path, cwd=cwd)
    name = None if looks_like_path(name_or_path) else name_or_path
    return read_profile_file(path, name=name)


def atomic_write_text(path: Path, text: str, *, force: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`trainwiz.atomic.write_atomic`, fsynced).

    Without ``force`` an existing file is never replaced (ProfileExistsError). Creates parent
    folders. A full disk or a read-only folder is one ProfileError naming the path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(path.parent)
        return write_atomic(path, text, replace=force)
    except TargetExistsError:
        raise ProfileExistsError(path) from None
    except OSError as exc:
        why = "the disk is full" if is_disk_full(exc) else (exc.strerror or str(exc))
        raise ProfileError(f"{path}: cannot be written: {why}; nothing was changed",
                           source=str(path)) from None


def profile_text(profile: Profile) -> str:
    return dump_yaml(profile_to_dict(profile))


def save_profile(profile: Profile, *, scope: str = "user", force: bool = False,
                 path: Path | str | None = None, cwd: Path | None = None) -> Path:
    """Validate and write ``profile``; return the file written.

    ``scope`` "user" or "project" picks the store (file ``NAME.yaml``); ``path`` writes exactly
    there instead. Never overwrites an existing file unless ``force``.
    """
    if path is None:
        check_name(profile.name)
        if scope == "user":
            folder = user_profiles_dir()
        elif scope == "project":
            folder = project_save_dir(cwd)
        else:
            raise ProfileError(f"scope {scope!r} is not allowed; allowed: user, project")
        target = folder / f"{profile.name}.yaml"
        if not force:
            for suffix in SUFFIXES[1:]:
                if (folder / f"{profile.name}{suffix}").exists():
                    raise ProfileExistsError(folder / f"{profile.name}{suffix}")
    else:
        target = Path(path).expanduser()
        if not target.is_absolute():
            target = Path(cwd or Path.cwd()) / target
    validate_profile(profile, source=str(target))
    return atomic_write_text(target, profile_text(profile), force=force)


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    path: Path
    scope: str  # "project" | "user"
    profile: Profile | None = None
    error: str | None = None  # why the file could not be used (it is left as it is)
    shadowed: bool = False  # a project profile of the same name wins over this one

    @property
    def damaged(self) -> bool:
        return self.error is not None


class ProfileStore:
    """The profiles visible from ``cwd``: the project stores, then the user store."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = Path(cwd) if cwd is not None else None

    def dirs(self) -> list[tuple[Path, str]]:
        return ([(d, "project") for d in project_profile_dirs(self.cwd)]
                + [(user_profiles_dir(), "user")])

    def list(self) -> list[ProfileEntry]:
        """Every profile file, valid or damaged, in lookup order (a name's winner first)."""
        entries: list[ProfileEntry] = []
        seen: set[str] = set()
        for folder, scope in self.dirs():
            if not folder.is_dir():
                continue
            sweep_stale(folder)  # temporary files of saves killed long ago
            files = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
            for path in files:
                name = _name_from_path(path)
                shadowed = name in seen
                seen.add(name)
                try:
                    prof = read_profile_file(path, name=name)
                    entries.append(ProfileEntry(name, path, scope, prof, None, shadowed))
                except ProfileError as exc:
                    entries.append(ProfileEntry(name, path, scope, None, str(exc), shadowed))
        return entries

    def path(self, name: str) -> Path:
        return resolve_profile_path(name, cwd=self.cwd)

    def store_file(self, name: str) -> Path | None:
        """The store file of profile NAME (project stores first), or None."""
        found = find_profile(name, cwd=self.cwd) if NAME_RE.match(name) else None
        return found[0] if found else None

    def removable(self, name: str) -> Path:
        """The file ``remove(name)`` would delete: profile NAME from the stores (the project one
        when both exist), or the file NAME names when it lies in a store or is a valid profile.
        Anything else (a training script, any file that is not a profile) is ProfileError."""
        if looks_like_path(name):
            path = Path(name).expanduser()
            if not path.is_absolute():
                path = Path(self.cwd or Path.cwd()) / path
            in_store = path.suffix.lower() in SUFFIXES and any(
                path.resolve().parent == d.resolve() for d, _ in self.dirs() if d.is_dir())
            if not path.is_file():
                raise ProfileError(f"{name}: no such profile file")
            if not in_store:
                try:
                    read_profile_file(path)
                except ProfileError as exc:
                    raise ProfileError(f"{name}: not removed: it is not a valid trainwiz "
                                       f"profile ({str(exc).splitlines()[0]})") from None
            return path
        return self.path(name)

    def remove(self, name: str) -> Path:
        """Delete what :meth:`removable` names; returns it."""
        path = self.removable(name)
        path.unlink()
        return path

    def copy(self, name: str, new: str, force: bool = False) -> Path:
        """Copy profile NAME to NEW in the same store, byte for byte (comments kept). One name
        is one file: an existing ``NEW.yml`` is the target, never a second ``NEW.yaml``."""
        check_name(new)
        src = self.path(name)
        read_profile_file(src, name=name)  # refuse to copy a damaged file
        scope_dir = src.parent
        target = scope_dir / f"{new}.yaml"
        for suffix in SUFFIXES:
            if (scope_dir / f"{new}{suffix}").exists():
                target = scope_dir / f"{new}{suffix}"
                break
        if target.resolve() == src.resolve():
            raise ProfileError(f"'{name}' and '{new}' are the same file")
        return atomic_write_text(target, src.read_text(encoding="utf-8"), force=force)
