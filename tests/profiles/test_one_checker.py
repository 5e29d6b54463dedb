"""One checker for every YAML file a user gives: a profile, an accelerate config, a box file.

The same mistake reads the same everywhere (file:line, the key, what is allowed, a did-you-mean),
the CLI exits 2 and writes nothing; and what a field allows is written once, in its description.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from trainwiz.checker import Checker, option
from trainwiz.profiles import ProfileError, load_profile, schema

# One file of each kind, each with its second line misspelt and its third a bad choice.
FILES = {
    "profile.yaml": ("profiles", "import", "profile.yaml", "--name", "p"),
    "accelerate.yaml": ("profiles", "import", "accelerate.yaml", "--name", "p"),
    "box.yaml": ("gpus", "--simulate", "box.yaml"),
}
MISSPELT = {
    "profile.yaml": "strategy: ddp\nmixed_precison: bf16\n",
    "accelerate.yaml": "distributed_type: MULTI_GPU\nmixed_precison: bf16\nnum_processes: 2\n",
    "box.yaml": "gpus:\n  - preset: H100-80GB\n    memory_usd: 3GiB\n",
}
BAD_CHOICE = {
    "profile.yaml": "strategy: ddp\nnum_processes: 2\nmixed_precision: bf17\n",
    "accelerate.yaml": "distributed_type: MULTI_GPU\nnum_processes: 2\nmixed_precision: bf17\n",
    "box.yaml": "gpus:\n  - count: 2\n    preset: H1000\n",
}


def _refused(run_cli, isolated_env, tmp_path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    store = Path(isolated_env["XDG_CONFIG_HOME"]) / "trainwiz" / "profiles"
    r = run_cli(*FILES[name])
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == "" and not (store.exists() and any(store.iterdir()))  # nothing written
    (line,) = r.stderr.strip().splitlines()  # one problem, one line
    return line


@pytest.mark.parametrize("name", FILES)
def test_a_misspelt_key_reads_the_same_in_every_file(run_cli, isolated_env, tmp_path, name):
    line = _refused(run_cli, isolated_env, tmp_path, name, MISSPELT[name])
    key, meant = {"profile.yaml": ("mixed_precison", "mixed_precision"),
                  "accelerate.yaml": ("mixed_precison", "mixed_precision"),
                  "box.yaml": ("gpus[0].memory_usd", "memory_used")}[name]
    where, line_no = (" in 'gpus[0]'", 3) if name == "box.yaml" else ("", 2)
    match = re.fullmatch(rf"trainwiz: {re.escape(name)}:{line_no}: unknown key "
                         rf"'{re.escape(key)}' \(did you mean '{meant}'\?\); allowed "
                         rf"keys{re.escape(where)}: (.*)", line)
    assert match, line
    assert meant in match[1].split(", ")


@pytest.mark.parametrize("name", FILES)
def test_a_bad_choice_reads_the_same_in_every_file(run_cli, isolated_env, tmp_path, name):
    line = _refused(run_cli, isolated_env, tmp_path, name, BAD_CHOICE[name])
    key, value, meant = {"profile.yaml": ("mixed_precision", "bf17", "bf16"),
                         "accelerate.yaml": ("mixed_precision", "bf17", "bf16"),
                         "box.yaml": ("gpus[0].preset", "H1000", "H100-80GB")}[name]
    match = re.fullmatch(rf"trainwiz: {re.escape(name)}:3: key '{re.escape(key)}': '{value}' is "
                         rf"not allowed \(did you mean '{meant}'\?\); allowed: (.*)", line)
    assert match, line
    allowed = match[1].split(", ")
    assert meant in allowed
    if name == "profile.yaml":
        assert allowed == list(schema.MIXED_PRECISIONS)
    if name == "accelerate.yaml":  # accelerate has no bf16-pure (that is "no" + bf16 weights)
        assert allowed == [c for c in schema.MIXED_PRECISIONS if c != "bf16-pure"]


def _choice_fields():
    for cls in (schema.Profile, schema.FsdpOptions, schema.EstimateInputs, schema.LoraOptions,
                schema.QuantizationOptions, schema.SlurmOptions, schema.PlannedHardware):
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("trainwiz", {}).get("choices")
            if choices:
                yield cls, f.name, choices


_SECTION = {schema.Profile: (), schema.FsdpOptions: ("fsdp",), schema.EstimateInputs:
            ("estimate",), schema.LoraOptions: ("estimate", "lora"),
            schema.QuantizationOptions: ("estimate", "quantization")}


def _profile_text(path: tuple[str, ...], key: str, value) -> str:
    data = {"strategy": "fsdp", "num_processes": 2, "mixed_precision": "bf16",
            "estimate": {"model": "llama-3-8b", "method": "qlora", "lora": {}, "quantization": {}}}
    section = data
    for part in path:
        section = section.setdefault(part, {})
    section[key] = value
    return yaml.safe_dump(data)


@pytest.mark.parametrize("cls, key, choices", list(_choice_fields()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_what_a_field_allows_is_its_description(tmp_path, cls, key, choices):
    """For every field with choices: the validator lists exactly the description's choices, and
    takes each of them (so a choice added there needs no edit in the validator)."""
    path = _SECTION[cls]
    label = ".".join(path + (key,))
    file = tmp_path / "p.yaml"
    file.write_text(_profile_text(path, key, "no-such-choice"))
    with pytest.raises(ProfileError) as err:
        load_profile(str(file))
    assert f"key '{label}': 'no-such-choice' is not allowed" in str(err.value)
    assert f"allowed: {', '.join(map(str, choices))}" in str(err.value)
    for choice in choices:
        file.write_text(_profile_text(path, key, choice))
        try:
            load_profile(str(file))
        except ProfileError as exc:  # another rule may refuse the combination; not the value
            assert f"key '{label}': {choice!r} is not allowed" not in str(exc)


def test_a_new_choice_in_a_description_is_read_without_touching_the_checker():
    @dataclasses.dataclass
    class Options:
        optimizer: str = option("adamw", choices=("adamw", "sgd", "lion"))
        rank: int = option(16, minimum=1)

    chk = Checker("new.yaml", {("optimizer",): 1})
    assert chk.read({"optimizer": "LION", "rank": 8}, Options) == {"optimizer": "lion", "rank": 8}
    assert chk.read({"optimizer": "lino"}, Options) == {}
    (problem,) = chk.problems
    assert (problem.line, problem.message) == (1, "key 'optimizer': 'lino' is not allowed (did "
                                                  "you mean 'lion'?); allowed: adamw, sgd, lion")
