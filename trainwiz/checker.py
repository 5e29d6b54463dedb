"""One checker for the YAML files users give trainwiz: profiles, accelerate configs, box files.

Every problem is one line naming the file, the line, the key and what is allowed::

    box.yaml:3: unknown key 'gpus[0].memory' (did you mean 'memory_used'?); allowed keys in ...
    p.yaml:2: key 'strategy': 'dpp' is not allowed (did you mean 'ddp'?); allowed: single, ddp, fsdp

A field is described once: a :class:`Spec` in a table, or a dataclass field made with
:func:`option`, whose annotation gives the type and whose default is the default
(:func:`field_specs` turns a dataclass into its Specs). The checker reads values against that
description, so a choice added there is accepted, and listed, with no other edit.

Pure: the standard library, PyYAML (through :mod:`trainwiz.safeyaml`) and :mod:`trainwiz.units`.
PyYAML is imported when a file is parsed, as in safeyaml: ``import trainwiz.hardware`` stays light.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from trainwiz import safeyaml
from trainwiz.errors import TrainwizError, UsageError
from trainwiz.text import first_control
from trainwiz.units import parse_count, parse_size

KeyPath = tuple  # str keys and int list indices: ("gpus", 0, "memory_used") is gpus[0].memory_used
_META = "trainwiz"


def key_label(path: KeyPath) -> str:
    """How a key path is written in messages: ``gpus[0].memory_used``, ``fsdp.version``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


# --------------------------------------------------------------------------- problems

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where, which key, and what is wrong."""

    message: str
    key: str | None = None  # as written in messages: "fsdp.sharding_strategy", "gpus[0].count"
    line: int | None = None  # 1-based


class CheckError(TrainwizError):
    """A file that cannot be used. ``str(err)`` has one line per problem: file, line, key."""

    unnamed = "<input>"  # the source, when none was given
    what = "the file"  # what a whole file is called in messages

    def __init__(self, message: str | None = None, *, source: str | None = None,
                 problems: list[Problem] | tuple[Problem, ...] = (),
                 exit_code: int | None = None) -> None:
        self.source = source
        self.problems = tuple(problems)
        if message is None:
            message = self._format(source or self.unnamed, self.problems)
        super().__init__(message, exit_code=exit_code)

    @staticmethod
    def _format(source: str, problems: tuple[Problem, ...]) -> str:
        def one(p: Problem) -> str:
            return f"{source}{'' if p.line is None else f':{p.line}'}: {p.message}"

        if len(problems) == 1:
            return one(problems[0])
        problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
        return f"{source}: {len(problems)} problems\n" + "\n".join("  " + one(p) for p in problems)


# --------------------------------------------------------------------------- YAML with lines

def parse_yaml(text: str, source: str, *, error: type[CheckError] = CheckError
               ) -> tuple[Any, dict[KeyPath, int]]:
    """``yaml.safe_load`` the text (bounded, :mod:`trainwiz.safeyaml`); also return
    {key path: line} for messages. A syntax error becomes ``error`` naming the file and line."""
    import yaml

    try:
        data, node = safeyaml.load(text, source)
    except safeyaml.YamlRefused as exc:
        raise error(str(exc), source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{what} ({exc.context})"
        raise error(source=source, problems=[Problem(
            f"not valid YAML: {what}", line=mark.line + 1 if mark is not None else None)]) from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}", source=source) from None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (str(key_node.value),)
                out.setdefault(sub, key_node.start_mark.line + 1)
                _collect_lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault(path + (i,), item.start_mark.line + 1)
            _collect_lines(item, path + (i,), out)


# --------------------------------------------------------------------------- descriptions

@dataclass(frozen=True)
class Spec:
    """What one field holds. Kinds: int count float bool str enum size list list_int list_str
    env section (a nested dataclass, ``section``) any."""

    kind: str
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    upper: bool = False  # enum values written upper-case (FSDP names): any case is read
    pattern: str | None = None  # str: the whole value must match
    help: str = ""  # what the value is: said when it is missing or does not match ``pattern``
    required: bool = False  # a dataclass field without a default
    always: bool = False  # written to files even when it is the default
    section: type | None = None


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
           choices: tuple = (), minimum: float | None = None, maximum: float | None = None,
           upper: bool = False, kind: str | None = None, help: str = "", always: bool = False,
           stored: bool = True, pattern: str | None = None) -> Any:
    """A dataclass field with its description: the annotation is its type, ``default`` its
    default, the rest what is allowed. ``stored=False``: not a key of the file (a profile's name)."""
    meta = {_META: dict(choices=tuple(choices), minimum=minimum, maximum=maximum, upper=upper,
                        kind=kind, help=help, always=always, stored=stored, pattern=pattern)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


@functools.cache
def field_specs(cls: type) -> dict[str, Spec]:
    """The Specs of a dataclass's stored fields, in field order (the order files are written)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Spec] = {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata.get(_META, {}))
        if not meta.pop("stored", True):
            continue
        tp, nullable = hints[f.name], False
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            nullable, tp = len(args) < len(typing.get_args(tp)), args[0]
        kind = meta.pop("kind", None) or ("enum" if meta.get("choices") else _kind_of(tp))
        out[f.name] = Spec(kind, nullable=nullable, section=tp if kind == "section" else None,
                           required=(f.default is dataclasses.MISSING
                                     and f.default_factory is dataclasses.MISSING),
                           **{k: v for k, v in meta.items() if v is not None})
    return out


def _kind_of(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "section"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return {int: "list_int", str: "list_str"}.get(args[0] if args else None, "list")
    if origin is dict or tp is dict:
        return "env"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, "any")


def did_you_mean(word: Any, options) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    if not close:
        low = str(word).lower()
        close = [o for o in map(str, options) if o.lower() == low]
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def describe(spec: Spec) -> str:
    """What a value of ``spec`` must be, for messages."""
    if spec.kind == "enum":
        return "allowed: " + ", ".join(map(str, spec.choices))
    return spec.help or {
        "int": "an integer", "count": "a whole number such as 100000000 or 1e8",
        "float": "a number", "bool": "true or false", "str": "a string", "size": "a size such as "
        "80GiB", "list": "a list", "list_int": "a list of GPU indices", "list_str": "a list of "
        "strings", "env": "a mapping", "section": "a mapping"}.get(spec.kind, "a value")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- the checker

class Checker:
    """Collects every problem of one file (so one edit fixes it), then raises them together."""

    def __init__(self, source: str, lines: dict[KeyPath, int] | None = None, *,
                 error: type[CheckError] = CheckError, warnings: list[str] | None = None) -> None:
        self.source = source
        self.lines = lines or {}
        self.error = error
        self.problems: list[Problem] = []
        self.rejected: set[KeyPath] = set()  # keys whose values were refused (left out)
        self.warnings = warnings if warnings is not None else []

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of the nearest enclosing key that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(message, key=key_label(path) or None, line=self.line(path)))

    def warn(self, path: KeyPath, message: str) -> None:
        line = self.line(path)
        self.warnings.append(f"{self.source}{'' if line is None else f':{line}'}: {message}")

    def fail_if_any(self) -> None:
        if self.problems:
            raise self.error(source=self.source, problems=self.problems)

    # -- the messages every file shares
    def unknown_key(self, path: KeyPath, allowed) -> None:
        parent = key_label(path[:-1])
        self.add(path, f"unknown key '{key_label(path)}'{did_you_mean(path[-1], allowed)}; "
                       f"allowed keys{f' in {parent!r}' if parent else ''}: "
                       f"{', '.join(map(str, allowed))}")

    def bad_choice(self, path: KeyPath, value: Any, choices, *, suggest: str | None = None,
                   allowed: str | None = None) -> None:
        hint = f" (did you mean '{suggest}'?)" if suggest else did_you_mean(value, choices)
        self.add(path, f"key '{key_label(path)}': {value!r} is not allowed{hint}; allowed: "
                       f"{allowed or ', '.join(map(str, choices))}")
        self.rejected.add(path)

    def missing(self, path: KeyPath, spec: Spec) -> None:
        self.add(path[:-1], f"key '{key_label(path)}' is missing: {describe(spec)}")

    def refuse(self, path: KeyPath, message: str) -> tuple[bool, None]:
        self.add(path, message)
        self.rejected.add(path)
        return False, None

    # -- a mapping against its description
    def section(self, data: Any, specs: dict[str, Spec], path: KeyPath = ()) -> dict[str, Any]:
        """The known keys of ``data`` with their values checked (refused ones left out);
        unknown keys and missing required ones reported."""
        if not isinstance(data, dict):
            where = f"key '{key_label(path)}'" if path else self.error.what
            self.refuse(path, f"{where} must be a mapping of keys to values, not "
                              f"{type_name(data)}")
            return {}
        out: dict[str, Any] = {}
        for key, value in data.items():
            sub = path + (str(key),)
            if key not in specs:
                self.unknown_key(sub, tuple(specs))
                continue
            ok, converted = self.value(value, specs[key], sub)
            if ok:
                out[key] = converted
        for key, spec in specs.items():
            if spec.required and key not in data:
                self.missing(path + (key,), spec)
        return out

    def read(self, data: Any, cls: type, path: KeyPath = ()) -> dict[str, Any] | None:
        """Keyword arguments for the dataclass ``cls`` from ``data``, nested dataclass fields
        built the same way; None when a required field is missing or refused."""
        specs = field_specs(cls)
        kwargs = self.section(data, specs, path)
        for key, spec in specs.items():
            if spec.kind != "section" or key not in kwargs:
                continue
            sub = None if kwargs[key] is None else self.read(kwargs[key], spec.section,
                                                             path + (key,))
            if sub is not None:
                kwargs[key] = spec.section(**sub)
            elif kwargs[key] is not None or not spec.nullable:
                del kwargs[key]  # refused (said so), or empty: the field's default
        if any(spec.required and key not in kwargs for key, spec in specs.items()):
            return None
        return kwargs

    # -- one value
    def value(self, value: Any, spec: Spec, path: KeyPath) -> tuple[bool, Any]:
        """(True, the value as the program uses it), or (False, None) with the problem added."""
        key = key_label(path)
        if value is None:
            if spec.nullable or spec.kind == "section":  # an empty section: its defaults
                return True, None
            return self.refuse(path, f"key '{key}' needs a value ({describe(spec)})")
        kind = spec.kind
        if kind in ("any", "section"):
            return True, value
        if kind == "count" and isinstance(value, str):  # 1e8, 2B, 500M as a user writes them
            try:
                value = parse_count(value, f"key '{key}'")
            except UsageError as exc:
                return self.refuse(path, str(exc))
        if kind == "size":
            try:
                return True, parse_size(value, f"key '{key}'",
                                        positive=spec.minimum is None or spec.minimum > 0)
            except UsageError as exc:
                return self.refuse(path, str(exc))
        if kind in ("int", "count", "float"):
            return self._number(value, spec, path)
        if kind == "bool":
            if not isinstance(value, bool):
                return self.refuse(path, f"key '{key}' must be true or false, not {value!r}")
            return True, value
        if kind in ("str", "list_str", "env") and (bad := _control_in(value)):
            return self.refuse(path, f"key '{key}' has a control character ({bad}), which a "
                                     "terminal would act on instead of showing; write it without")
        if kind == "str":
            if isinstance(value, (dict, list, bool)):
                return self.refuse(path, f"key '{key}' must be a string, not {type_name(value)}")
            if spec.pattern and not re.fullmatch(spec.pattern, str(value)):
                return self.refuse(path, f"key '{key}': {value!r} is not allowed; allowed: "
                                         f"{spec.help or spec.pattern}")
            return True, str(value)
        if kind == "enum":
            return self._choice(value, spec, path)
        if kind == "list":
            if not isinstance(value, list):
                return self.refuse(path, f"key '{key}' must be a list, not {type_name(value)}")
            return True, value
        if kind == "list_int":
            return self._gpu_list(value, path)
        if kind == "list_str":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None
                                                  for v in value):
                return self.refuse(path, f"key '{key}' must be a list of strings, not "
                                         f"{type_name(value)}")
            return True, [str(v) for v in value]
        if kind == "env":
            return self._env(value, path)
        raise AssertionError(kind)

    def _number(self, value: Any, spec: Spec, path: KeyPath) -> tuple[bool, Any]:
        key, whole = key_label(path), spec.kind != "float"
        if isinstance(value, float) and whole and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            return self.refuse(path, f"key '{key}' must be {'an integer' if whole else 'a number'}"
                                     f", not {type_name(value)} {value!r}")
        lo, hi = spec.minimum, spec.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            lo_, hi_, got = _shown(lo), _shown(hi), _shown(value)
            return self.refuse(path, f"key '{key}' must be from {lo_} to {hi_}, not {got}"
                                     if lo is not None and hi is not None else
                                     f"key '{key}' must be at least {lo_}, not {got}"
                                     if lo is not None else
                                     f"key '{key}' must be at most {hi_}, not {got}")
        return True, value

    def _choice(self, value: Any, spec: Spec, path: KeyPath) -> tuple[bool, Any]:
        choices = spec.choices
        if value in choices and not isinstance(value, bool):
            return True, value
        if isinstance(value, str):
            if isinstance(choices[0], int):
                if value.strip().isdigit() and int(value) in choices:
                    return True, int(value)
            else:
                norm = value.upper() if spec.upper else value.lower()
                if norm in choices:
                    return True, norm
        self.bad_choice(path, value, choices)
        return False, None

    def _gpu_list(self, value: Any, path: KeyPath) -> tuple[bool, Any]:
        items = value if isinstance(value, list) else None
        if isinstance(value, int) and not isinstance(value, bool):
            items = [value]
        if isinstance(value, str):
            try:
                items = [int(v) for v in value.replace(" ", "").split(",") if v]
            except ValueError:
                items = None
        if items is None or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            return self.refuse(path, f"key '{key_label(path)}' must be a list of GPU indices such "
                                     f"as [0, 1], not {value!r}")
        if any(v < 0 for v in items):
            return self.refuse(path, f"key '{key_label(path)}': GPU indices start at 0, not "
                                     f"{min(items)}")
        return True, list(items)

    def _env(self, value: Any, path: KeyPath) -> tuple[bool, Any]:
        key = key_label(path)
        if not isinstance(value, dict):
            return self.refuse(path, f"key '{key}' must be a mapping NAME: value, not "
                                     f"{type_name(value)}")
        env: dict[str, str] = {}
        ok = True
        for name, val in value.items():
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                self.add(path + (str(name),), f"key '{key}': {name!r} is not a valid environment "
                                              "variable name")
                ok = False
            elif isinstance(val, bool):
                self.add(path + (name,), f"key '{key}.{name}' must be a string (quote it: "
                                         f"{name}: \"{str(val).lower()}\")")
                ok = False
            elif val is None or isinstance(val, (dict, list)):
                self.add(path + (name,), f"key '{key}.{name}' must be a string, not "
                                         f"{type_name(val)}")
                ok = False
            else:
                env[name] = str(val)
        if not ok:
            self.rejected.add(path)
        return ok, env


def _shown(n: float | int | None) -> str:
    """A bound or a value in a message: 4096 and 524288 as they are typed, 1e15 as
    1,000,000,000,000,000 (not 1e+15), and a 31-digit 1e30 as 1e+30."""
    if n is None:
        return ""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:g}"
    if abs(n) < 10**6:
        return str(int(n))
    return f"{int(n):,}" if abs(n) < 10**18 else f"{n:.3g}"


def _control_in(value: Any) -> str | None:
    """The first control character in a string, a list's strings or a mapping's keys and
    values (names and paths from a file are shown on terminals later)."""
    if isinstance(value, str):
        return first_control(value)
    items = value.items() if isinstance(value, dict) else [value] if not isinstance(
        value, list) else value
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):
            if isinstance(part, str) and (bad := first_control(part)):
                return bad
    return None
