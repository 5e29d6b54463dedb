"""Profile -> the dict and YAML text of a profile file, derived from the schema's fields:
their order is the key order, their defaults are what is left out."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from trainwiz.checker import field_specs
from trainwiz.profiles.schema import Profile


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The dict written to a profile file: defaults left out, readable key order, ``version``
    always present. The name is not stored: it is the file's name."""
    return _section(profile)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _section(obj: Any) -> dict[str, Any]:
    specs = field_specs(type(obj))
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        spec = specs.get(f.name)
        if spec is None:  # not stored (the name)
            continue
        value, default = getattr(obj, f.name), _default(f)
        if spec.kind == "section":
            if value is not None:
                sub = _section(value)
                if sub or default is None:  # a given optional section is written, even empty
                    out[f.name] = sub
        elif spec.always or spec.required or value != default:
            out[f.name] = list(value) if isinstance(value, list) else \
                dict(value) if isinstance(value, dict) else value
    return out


class _Dumper(yaml.SafeDumper):
    """Block mappings; short lists of scalars on one line (``gpu_ids: [0, 1]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < 40)
               for v in data) and len(data) <= 16
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: dict[str, Any]) -> str:
    """YAML text in the given key order, block style, readable."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)
