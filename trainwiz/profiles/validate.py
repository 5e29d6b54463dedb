"""Profile <-> plain dict, with validation that names the file, the line, the key and what is allowed.

Pure: the standard library and PyYAML only. Files are parsed with the safe loader, bounded in
size and alias expansion (:mod:`trainwiz.safeyaml`); the node graph also tells on which line each
key sits, so messages can point at it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields
from typing import Any

import yaml

from trainwiz import safeyaml
from trainwiz.errors import TrainwizError, UsageError
import trainwiz.profiles.schema as schema
from trainwiz.profiles.schema import (
    EstimateInputs,
    FsdpOptions,
    LoraOptions,
    PlannedHardware,
    Profile,
    QuantizationOptions,
    SlurmOptions,
)
from trainwiz.units import parse_count, parse_rate

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a profile: where, which key, and what is wrong."""

    message: str
    key: str | None = None  # dotted: "fsdp.sharding_strategy"
    line: int | None = None  # 1-based


class ProfileError(TrainwizError):
    """A profile that cannot be read, saved or used. ``str(err)`` names the file, line and key."""

    def __init__(self, message: str | None = None, *, source: str | None = None,
                 problems: list[Problem] | tuple[Problem, ...] = (),
                 exit_code: int | None = None) -> None:
        self.source = source
        self.problems = tuple(problems)
        if message is None:
            message = _format_problems(source, self.problems)
        super().__init__(message, exit_code=exit_code)


class ProfileExistsError(ProfileError, FileExistsError):
    """Saving would replace an existing file (pass force / --force). Also a FileExistsError."""

    def __init__(self, path) -> None:
        self.path = path
        super().__init__(f"{path} already exists; use --force to overwrite it", source=str(path))

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


def _format_problems(source: str | None, problems: tuple[Problem, ...]) -> str:
    def where(p: Problem) -> str:
        loc = source or "<profile>"
        if p.line is not None:
            loc += f":{p.line}"
        return loc

    def one(p: Problem) -> str:
        return f"{where(p)}: {p.message}"

    if len(problems) == 1:
        return one(problems[0])
    problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
    head = f"{source or '<profile>'}: {len(problems)} problems"
    return head + "\n" + "\n".join("  " + one(p) for p in problems)


# --------------------------------------------------------------------------- YAML with lines

def parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """``yaml.safe_load`` the text; also return {key path: line} for messages.

    A syntax error becomes a ProfileError naming the file and line.
    """
    try:
        data, node = safeyaml.load(text, source)
    except safeyaml.YamlRefused as exc:
        raise ProfileError(str(exc), source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{what} ({exc.context})"
        raise ProfileError(source=source, problems=[Problem(f"not valid YAML: {what}", line=line)]) \
            from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}", source=source) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (str(key_node.value),)
                out.setdefault(sub, key_node.start_mark.line + 1)
                _collect_lines(value_node, sub, out)


# --------------------------------------------------------------------------- field specs

@dataclass(frozen=True)
class _Spec:
    kind: str  # int count float bool str enum list_int list_str env
    choices: tuple = ()
    minimum: int | None = None
    maximum: float | None = None
    nullable: bool = False
    upper: bool = False  # enum values written upper-case (FSDP names)


PROFILE_SPECS: dict[str, _Spec] = {
    "version": _Spec("int", minimum=1),
    "description": _Spec("str", nullable=True),
    "strategy": _Spec("enum", schema.STRATEGIES),
    "mixed_precision": _Spec("enum", schema.MIXED_PRECISIONS),
    "device": _Spec("enum", schema.DEVICES),
    "gpu_ids": _Spec("list_int", nullable=True),
    "num_processes": _Spec("int", minimum=1, nullable=True),
    "num_machines": _Spec("int", minimum=1),
    "machine_rank": _Spec("int", minimum=0),
    "main_address": _Spec("str", nullable=True),
    "main_port": _Spec("int", minimum=1, nullable=True),
    "rdzv_backend": _Spec("enum", schema.RDZV_BACKENDS),
    "max_restarts": _Spec("int", minimum=0),
    "launcher": _Spec("enum", schema.LAUNCHERS),
    "python": _Spec("str", nullable=True),
    "env": _Spec("env"),
    "script": _Spec("str", nullable=True),
    "script_args": _Spec("list_str"),
    "scheduler": _Spec("enum", schema.SCHEDULERS),
}

FSDP_SPECS: dict[str, _Spec] = {
    "version": _Spec("enum", (1, 2)),
    "sharding_strategy": _Spec("enum", schema.SHARDING_STRATEGIES, upper=True),
    "auto_wrap_policy": _Spec("enum", schema.AUTO_WRAP_POLICIES, upper=True),
    "transformer_layer_cls_to_wrap": _Spec("list_str"),
    "min_num_params": _Spec("int", minimum=0, nullable=True),
    "backward_prefetch": _Spec("enum", schema.BACKWARD_PREFETCH, upper=True),
    "forward_prefetch": _Spec("bool"),
    "offload_params": _Spec("bool"),
    "state_dict_type": _Spec("enum", schema.STATE_DICT_TYPES, upper=True),
    "cpu_ram_efficient_loading": _Spec("bool"),
    "sync_module_states": _Spec("bool"),
    "use_orig_params": _Spec("bool"),
    "activation_checkpointing": _Spec("bool"),
}

ESTIMATE_SPECS: dict[str, _Spec] = {
    "model": _Spec("str"),
    "batch_size": _Spec("int", minimum=1),
    "seq_len": _Spec("int", minimum=1),
    "optimizer": _Spec("enum", schema.OPTIMIZERS),
    "fused_optimizer": _Spec("bool"),
    "grad_accum": _Spec("int", minimum=1),
    "activation_checkpointing": _Spec("bool"),
    "attention": _Spec("enum", schema.ATTENTION),
    "loop": _Spec("enum", schema.LOOPS),
    "tokens": _Spec("count", minimum=1, nullable=True),
    "steps": _Spec("count", minimum=1, nullable=True),
    "network": _Spec("str", nullable=True),
    "method": _Spec("enum", schema.METHODS),
}

LORA_SPECS: dict[str, _Spec] = {
    "rank": _Spec("int", minimum=1),
    "alpha": _Spec("float", minimum=0, nullable=True),
    "dropout": _Spec("float", minimum=0, maximum=0.99),
    "targets": _Spec("str"),
}

QUANTIZATION_SPECS: dict[str, _Spec] = {
    "type": _Spec("enum", schema.QUANT_TYPES),
    "double_quant": _Spec("bool"),
    "compute_dtype": _Spec("enum", schema.QUANT_COMPUTE_DTYPES),
}

HARDWARE_SPECS: dict[str, _Spec] = {
    "gpu": _Spec("str"),
    "gpu_memory": _Spec("int", minimum=1),
    "gpus_per_machine": _Spec("int", minimum=1),
    "simulated": _Spec("bool"),
}

SLURM_SPECS: dict[str, _Spec] = {
    "partition": _Spec("str", nullable=True),
    "nodes": _Spec("int", minimum=1),
    "time": _Spec("str", nullable=True),
    "account": _Spec("str", nullable=True),
    "qos": _Spec("str", nullable=True),
    "sbatch_args": _Spec("list_str"),
    "run_dir": _Spec("str", nullable=True),
}

# Key order in written files: what a reader wants first.
PROFILE_KEY_ORDER = ("version", "description", "strategy", "fsdp", "mixed_precision", "device",
                     "gpu_ids", "num_processes", "num_machines", "machine_rank", "main_address",
                     "main_port", "rdzv_backend", "max_restarts", "launcher", "python", "env",
                     "script", "script_args", "estimate", "scheduler", "slurm", "hardware")
_ALL_TOP_KEYS = tuple(PROFILE_SPECS) + ("fsdp", "estimate", "slurm", "hardware")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    if not close:
        low = str(word).lower()
        close = [o for o in map(str, options) if o.lower() == low]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


class _Checker:
    def __init__(self, source: str, lines: dict[Path_, int] | None) -> None:
        self.source = source
        self.lines = lines or {}
        self.problems: list[Problem] = []

    def line(self, path: Path_) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def add(self, path: Path_, message: str) -> None:
        key = ".".join(path) if path else None
        self.problems.append(Problem(message, key=key, line=self.line(path)))

    def fail_if_any(self) -> None:
        if self.problems:
            raise ProfileError(source=self.source, problems=self.problems)

    # -- one mapping against a spec table
    def section(self, data: Any, specs: dict[str, _Spec], path: Path_,
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
        where = f"'{'.'.join(path)}'" if path else "a profile"
        if not isinstance(data, dict):
            self.add(path, f"{where} must be a mapping of keys to values, not {_type_name(data)}")
            return {}
        out: dict[str, Any] = {}
        allowed = tuple(specs) + extra
        for key, value in data.items():
            sub = path + (str(key),)
            if key not in allowed:
                label = ".".join(sub)
                self.add(sub, f"unknown key '{label}'{_did_you_mean(key, allowed)}; "
                              f"allowed keys{' in ' + repr('.'.join(path)) if path else ''}: "
                              f"{', '.join(allowed)}")
                continue
            if key in specs:
                ok, converted = self.value(value, specs[key], sub)
                if ok:
                    out[key] = converted
            else:
                out[key] = value
        return out

    def value(self, value: Any, spec: _Spec, path: Path_) -> tuple[bool, Any]:
        key = ".".join(path)
        if value is None:
            if spec.nullable:
                return True, None
            self.add(path, f"key '{key}' needs a value ({self.describe(spec)})")
            return False, None
        kind = spec.kind
        if kind == "count" and isinstance(value, str):  # 1e8, 2B, 500M as a user writes them
            try:
                value = parse_count(value, f"key '{key}'")
            except UsageError as exc:
                self.add(path, str(exc))
                return False, None
        if kind in ("int", "count"):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    self.add(path, f"key '{key}' must be an integer, not {_type_name(value)} "
                                   f"{value!r}")
                    return False, None
            if spec.minimum is not None and value < spec.minimum:
                self.add(path, f"key '{key}' must be at least {spec.minimum}, not {value}")
                return False, None
            return True, value
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.add(path, f"key '{key}' must be a number, not {_type_name(value)} {value!r}")
                return False, None
            if spec.minimum is not None and value < spec.minimum or \
                    spec.maximum is not None and value > spec.maximum:
                self.add(path, f"key '{key}' must be from {spec.minimum} to {spec.maximum}, "
                               f"not {value}" if spec.maximum is not None else
                               f"key '{key}' must be at least {spec.minimum}, not {value}")
                return False, None
            return True, value
        if kind == "bool":
            if not isinstance(value, bool):
                self.add(path, f"key '{key}' must be true or false, not {value!r}")
                return False, None
            return True, value
        if kind == "str":
            if isinstance(value, (dict, list, bool)):
                self.add(path, f"key '{key}' must be a string, not {_type_name(value)}")
                return False, None
            return True, str(value)
        if kind == "enum":
            choices = spec.choices
            if value in choices and not isinstance(value, bool):
                return True, value
            if isinstance(value, str) and not isinstance(choices[0], int):
                norm = value.upper() if spec.upper else value.lower()
                if norm in choices:
                    return True, norm
            if isinstance(value, str) and isinstance(choices[0], int) and value.isdigit() \
                    and int(value) in choices:
                return True, int(value)
            self.add(path, f"key '{key}': {value!r} is not allowed{_did_you_mean(value, choices)}; "
                           f"allowed: {', '.join(map(str, choices))}")
            return False, None
        if kind == "list_int":
            items = value if isinstance(value, list) else None
            if isinstance(value, int) and not isinstance(value, bool):
                items = [value]
            if isinstance(value, str):
                try:
                    items = [int(v) for v in value.replace(" ", "").split(",") if v]
                except ValueError:
                    items = None
            if items is None or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
                self.add(path, f"key '{key}' must be a list of GPU indices such as [0, 1], "
                               f"not {value!r}")
                return False, None
            if any(v < 0 for v in items):
                self.add(path, f"key '{key}': GPU indices start at 0, not {min(items)}")
                return False, None
            return True, list(items)
        if kind == "list_str":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None
                                                  for v in value):
                self.add(path, f"key '{key}' must be a list of strings, not {_type_name(value)}")
                return False, None
            return True, [str(v) for v in value]
        if kind == "env":
            if not isinstance(value, dict):
                self.add(path, f"key '{key}' must be a mapping NAME: value, not {_type_name(value)}")
                return False, None
            env: dict[str, str] = {}
            ok = True
            for name, val in value.items():
                if not isinstance(name, str) or not _ENV_NAME.match(name):
                    self.add(path + (str(name),), f"key '{key}': {name!r} is not a valid "
                                                  "environment variable name")
                    ok = False
                elif isinstance(val, bool) or val is None or isinstance(val, (dict, list)):
                    if isinstance(val, bool):
                        msg = (f"key '{key}.{name}' must be a string (quote it: "
                               f"{name}: \"{str(val).lower()}\")")
                    else:
                        msg = f"key '{key}.{name}' must be a string, not {_type_name(val)}"
                    self.add(path + (name,), msg)
                    ok = False
                else:
                    env[name] = str(val)
            return ok, env
        raise AssertionError(kind)

    @staticmethod
    def describe(spec: _Spec) -> str:
        if spec.kind == "enum":
            return "allowed: " + ", ".join(map(str, spec.choices))
        return {"int": "an integer", "count": "a whole number such as 100000000 or 1e8",
                "float": "a number", "bool": "true or false", "str": "a string",
                "list_int": "a list of GPU indices", "list_str": "a list of strings",
                "env": "a mapping"}[spec.kind]


# --------------------------------------------------------------------------- dict -> Profile

def profile_from_dict(data: Any, *, source: str, name: str,
                      lines: dict[Path_, int] | None = None) -> Profile:
    """Validate a parsed profile file and build the Profile. Raises ProfileError listing every
    problem (file, line, key, what is allowed)."""
    chk = _Checker(source, lines)
    if data is None:
        data = {}
    top = chk.section(data, PROFILE_SPECS, (), extra=("fsdp", "estimate", "slurm", "hardware"))
    version = top.get("version", schema.SCHEMA_VERSION)
    if isinstance(version, int) and version > schema.SCHEMA_VERSION:
        chk.add(("version",), f"key 'version': this file is version {version}, written by a newer "
                              f"trainwiz; this one reads version {schema.SCHEMA_VERSION}")
    fsdp_raw = top.pop("fsdp", None)
    est_raw = top.pop("estimate", None)
    hardware_raw = top.pop("hardware", None)
    hardware = None
    if hardware_raw is not None:
        hw_kw = chk.section(hardware_raw, HARDWARE_SPECS, ("hardware",))
        missing = [k for k in ("gpu", "gpu_memory") if isinstance(hardware_raw, dict)
                   and k not in hardware_raw]
        if missing:
            chk.add(("hardware",), f"key 'hardware.{missing[0]}' is missing: the planned "
                                   "hardware names the GPU and its memory in bytes")
        elif "gpu" in hw_kw and "gpu_memory" in hw_kw:
            hardware = PlannedHardware(**hw_kw)
    slurm_raw = top.pop("slurm", None)
    slurm_kw = chk.section(slurm_raw, SLURM_SPECS, ("slurm",)) if slurm_raw is not None else None
    fsdp_kw = chk.section(fsdp_raw, FSDP_SPECS, ("fsdp",)) if fsdp_raw is not None else {}
    est = None
    if est_raw is not None:
        est_kw = chk.section(est_raw, ESTIMATE_SPECS, ("estimate",),
                             extra=("lora", "quantization"))
        lora_raw = est_kw.pop("lora", None)
        quant_raw = est_kw.pop("quantization", None)
        if lora_raw is not None:
            est_kw["lora"] = LoraOptions(**chk.section(lora_raw, LORA_SPECS, ("estimate", "lora")))
            if isinstance(lora_raw, dict) and "targets" in lora_raw:
                _check_targets(est_kw["lora"].targets, chk)
        if quant_raw is not None:
            est_kw["quantization"] = QuantizationOptions(
                **chk.section(quant_raw, QUANTIZATION_SPECS, ("estimate", "quantization")))
        if not (isinstance(est_raw, dict) and "method" in est_raw and "method" not in est_kw):
            _check_method(est_kw, lora_raw, quant_raw, top, chk)  # (a bad method said so)
        if isinstance(est_raw, dict) and "model" not in est_raw:
            chk.add(("estimate",), "key 'estimate.model' is missing: the estimate needs a model "
                                   "(catalog name, Hugging Face folder, config.json or params:N)")
        elif "model" in est_kw:
            est = EstimateInputs(**est_kw)
    # Keep going with the fields that were fine: impossible combinations are reported together
    # with type errors, so one edit fixes the file.

    profile = Profile(name=name, fsdp=FsdpOptions(**fsdp_kw), estimate=est, hardware=hardware,
                      **top)
    if slurm_kw is not None:
        profile.slurm = SlurmOptions(**slurm_kw)
    if fsdp_kw and profile.strategy != "fsdp" and FsdpOptions(**fsdp_kw) != FsdpOptions():
        chk.add(("fsdp",), f"key 'fsdp': FSDP options are set but strategy is "
                           f"'{profile.strategy}'; set strategy: fsdp or remove the fsdp section")
    _check_combinations(profile, chk)
    _check_slurm(profile, chk)
    chk.fail_if_any()
    return profile


def _check_targets(targets: str, chk: _Checker) -> None:
    names = [t.strip() for t in targets.split(",")]
    if not any(names):
        chk.add(("estimate", "lora", "targets"), "key 'estimate.lora.targets' is empty; allowed: "
                "all-linear, or a comma list of module names such as q_proj,v_proj")
    elif "all-linear" in [n.lower() for n in names] and len(names) > 1:
        chk.add(("estimate", "lora", "targets"), "key 'estimate.lora.targets': all-linear already "
                "names every linear layer; give it alone, or a list of module names")


def _check_method(est: dict, lora_raw, quant_raw, top: dict, chk: _Checker) -> None:
    method = est.get("method", "full")
    if method == "full" and lora_raw is not None:
        chk.add(("estimate", "lora"), "key 'estimate.lora' is set but estimate.method is full; "
                "set method: lora or qlora, or remove the lora section")
    if method != "qlora" and quant_raw is not None:
        chk.add(("estimate", "quantization"), f"key 'estimate.quantization' is for method qlora, "
                f"not {method}; set method: qlora or remove the quantization section")
    mp = top.get("mixed_precision", "no")
    if method == "qlora" and mp not in ("bf16", "fp16", "fp8"):
        chk.add(("mixed_precision",), f"key 'mixed_precision': QLoRA computes in bf16 or fp16 "
                f"(bnb_4bit_compute_dtype) over fp32 weights it does not quantize, not "
                f"{'fp32' if mp == 'no' else mp}; with method qlora allowed: bf16, fp16")


def validate_profile(profile: Profile, *, source: str | None = None) -> Profile:
    """Check a Profile built in code (the wizard, the app) the way a file is checked."""
    return profile_from_dict(profile_to_dict(profile), source=source or f"profile '{profile.name}'",
                             name=profile.name)


# Variables the launcher sets for each rank; a profile that set them would give every rank the
# same RANK (or send the rendezvous elsewhere).
LAUNCHER_OWNED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _check_combinations(p: Profile, chk: _Checker) -> None:
    f = p.fsdp
    if p.estimate is not None:
        if p.estimate.tokens is not None and p.estimate.steps is not None:
            chk.add(("estimate", "steps"), "keys 'estimate.tokens' and 'estimate.steps' are both "
                                           "set; give the training length one way")
        if p.estimate.network is not None:
            try:
                parse_rate(p.estimate.network, "key 'estimate.network'")
            except UsageError as exc:
                chk.add(("estimate", "network"), str(exc))
    owned = sorted(k for k in (p.env or {}) if str(k) in LAUNCHER_OWNED_ENV)
    if owned:
        chk.add(("env", owned[0]), f"key 'env.{owned[0]}': set by the launcher for each rank; "
                                   f"not allowed in a profile (not allowed: "
                                   f"{', '.join(LAUNCHER_OWNED_ENV)}; use main_address, "
                                   "main_port, num_processes)")
    per = p.processes_per_machine
    world = p.world_size
    if p.gpu_ids is not None:
        dups = sorted({g for g in p.gpu_ids if p.gpu_ids.count(g) > 1})
        if dups:
            chk.add(("gpu_ids",), f"key 'gpu_ids': GPU {', '.join(map(str, dups))} listed twice; "
                                  "each GPU can be used by one rank")
        if not p.gpu_ids:
            chk.add(("gpu_ids",), "key 'gpu_ids' is empty; leave it out to use every GPU")
        if p.device == "cpu":
            chk.add(("gpu_ids",), "key 'gpu_ids' is set but device is 'cpu' (CPU ranks use no "
                                  "GPU); remove gpu_ids or set device: cuda")
    if p.strategy == "single":
        if p.num_processes not in (None, 1):
            chk.add(("num_processes",), f"key 'num_processes': strategy 'single' runs one "
                                        f"process, not {p.num_processes}; use strategy ddp or "
                                        "fsdp for more")
        if p.gpu_ids is not None and len(p.gpu_ids) > 1 and p.device == "cuda":
            chk.add(("gpu_ids",), f"key 'gpu_ids': strategy 'single' uses one GPU, not "
                                  f"{len(p.gpu_ids)}; use strategy ddp or fsdp for more")
        if p.num_machines > 1:
            chk.add(("num_machines",), "key 'num_machines': strategy 'single' runs on one machine")
    if (p.device == "cuda" and p.gpu_ids and p.num_processes is not None
            and p.num_processes > len(p.gpu_ids)):
        chk.add(("num_processes",), f"key 'num_processes': {p.num_processes} processes on "
                                    f"{len(p.gpu_ids)} GPU(s) {p.gpu_ids}; with device cuda each "
                                    "process needs its own GPU")
    if p.machine_rank >= p.num_machines:
        chk.add(("machine_rank",), f"key 'machine_rank': {p.machine_rank} with num_machines "
                                   f"{p.num_machines}; allowed: 0 to {p.num_machines - 1}")
    # a multi-machine plan may leave main_address to launch time (the launcher asks for it)
    if p.main_port is not None and not 1 <= p.main_port <= 65535:
        chk.add(("main_port",), f"key 'main_port': {p.main_port} is not a port; allowed: 1 to "
                                "65535")
    if p.device == "cpu" and p.mixed_precision in ("fp16", "fp8"):
        chk.add(("mixed_precision",), f"key 'mixed_precision': {p.mixed_precision} needs a GPU; "
                                      "with device cpu allowed: no, bf16")
    if p.strategy != "fsdp":
        return
    if world == 1 and f.sharding_strategy in ("SHARD_GRAD_OP", "HYBRID_SHARD"):
        chk.add(("fsdp", "sharding_strategy"),
                f"key 'fsdp.sharding_strategy': {f.sharding_strategy} on one process has nothing "
                "to shard across; use 2 or more processes, or strategy single")
    if f.version == 2:
        if f.sharding_strategy in ("NO_SHARD", "HYBRID_SHARD"):
            chk.add(("fsdp", "sharding_strategy"),
                    f"key 'fsdp.sharding_strategy': {f.sharding_strategy} needs FSDP version 1 "
                    "(FSDP2 knows reshard-after-forward only); with version 2 allowed: "
                    "FULL_SHARD, SHARD_GRAD_OP")
        if f.forward_prefetch:
            chk.add(("fsdp", "forward_prefetch"),
                    "key 'fsdp.forward_prefetch': not available with FSDP version 2 "
                    "(accelerate refuses it); set fsdp.version: 1 or remove it")
    if f.version == 1 and f.cpu_ram_efficient_loading and not f.sync_module_states:
        chk.add(("fsdp", "sync_module_states"),
                "key 'fsdp.sync_module_states': must be true when cpu_ram_efficient_loading is "
                "true (rank 0 loads the weights and broadcasts them)")
    if f.transformer_layer_cls_to_wrap and f.auto_wrap_policy != "TRANSFORMER_BASED_WRAP":
        chk.add(("fsdp", "transformer_layer_cls_to_wrap"),
                "key 'fsdp.transformer_layer_cls_to_wrap' is only used with auto_wrap_policy "
                f"TRANSFORMER_BASED_WRAP, not {f.auto_wrap_policy}")
    if f.min_num_params is not None and f.auto_wrap_policy != "SIZE_BASED_WRAP":
        chk.add(("fsdp", "min_num_params"),
                "key 'fsdp.min_num_params' is only used with auto_wrap_policy SIZE_BASED_WRAP, "
                f"not {f.auto_wrap_policy}")


# Slurm's time limit formats (sbatch --time): minutes, minutes:seconds, hours:minutes:seconds,
# days-hours, days-hours:minutes, days-hours:minutes:seconds; also UNLIMITED / INFINITE.
_SLURM_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}"
                         r"|\d+-\d+:\d{1,2}:\d{1,2}|UNLIMITED|INFINITE|unlimited|infinite)$")
_SLURM_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")


def _check_slurm(p: Profile, chk: _Checker) -> None:
    s = p.slurm
    if p.scheduler != "slurm":
        if s is not None:
            chk.add(("slurm",), f"key 'slurm': Slurm options are set but scheduler is "
                                f"'{p.scheduler}'; set scheduler: slurm or remove the slurm section")
        return
    for key in ("num_machines", "machine_rank", "main_address"):
        if getattr(p, key) != getattr(Profile(name=p.name), key):
            chk.add((key,), f"key '{key}': with scheduler slurm Slurm chooses the machines (the "
                            "job's nodes; the rendezvous is on its first node); remove "
                            f"{key}{' and set slurm.nodes' if key == 'num_machines' else ''}")
    if p.gpu_ids is not None:
        chk.add(("gpu_ids",), "key 'gpu_ids': with scheduler slurm Slurm assigns each node's GPUs; "
                              "remove gpu_ids and set num_processes (ranks per node)")
    if s is None:
        return
    for key in ("partition", "account", "qos"):
        value = getattr(s, key)
        if value is not None and not _SLURM_NAME.match(value):
            chk.add(("slurm", key), f"key 'slurm.{key}': {value!r} is not a Slurm name (letters, "
                                    "digits, '.', '_', '-', '+')")
    if s.time is not None and not _SLURM_TIME.match(s.time.strip()):
        chk.add(("slurm", "time"), f"key 'slurm.time': {s.time!r} is not a Slurm time limit; "
                                   "allowed: minutes, hours:minutes:seconds, days-hours:minutes "
                                   "(e.g. 90, 4:00:00, 2-00:00:00)")
    for arg in s.sbatch_args:
        if not arg.startswith("-") or "\n" in arg or "\r" in arg:
            chk.add(("slurm", "sbatch_args"), f"key 'slurm.sbatch_args': {arg!r} is not an sbatch "
                                              "option; each item is one option, such as "
                                              "--mem=0 or --exclusive")
            break


def check_profile_gpus(profile: Profile, gpu_count: int, *, source: str | None = None) -> None:
    """Refuse GPU ids (or a process count) this box cannot provide. ``gpu_count``: GPUs found."""
    chk = _Checker(source or f"profile '{profile.name}'", None)
    if profile.device == "cuda":
        if gpu_count == 0:
            chk.add(("device",), "key 'device' is cuda but no GPU was found on this machine; "
                                 "set device: cpu for CPU ranks")
        elif profile.gpu_ids:
            missing = [g for g in profile.gpu_ids if g >= gpu_count]
            if missing:
                chk.add(("gpu_ids",), f"key 'gpu_ids': GPU {', '.join(map(str, missing))} does "
                                      f"not exist on this machine; allowed: 0 to {gpu_count - 1}")
        elif profile.num_processes is not None and profile.num_processes > gpu_count:
            chk.add(("num_processes",), f"key 'num_processes': {profile.num_processes} processes "
                                        f"but this machine has {gpu_count} GPU(s)")
    chk.fail_if_any()


# --------------------------------------------------------------------------- Profile -> dict

def _non_default(obj, cls_default) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value != getattr(cls_default, f.name):
            out[f.name] = value
    return out


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """The dict written to a profile file: defaults left out, readable key order, ``version``
    always present. The name is not stored: it is the file's name."""
    default = Profile(name=profile.name)
    out: dict[str, Any] = {"version": profile.version}
    for key in PROFILE_KEY_ORDER:
        if key == "version":
            continue
        value = getattr(profile, key)
        if key == "fsdp":
            sub = _non_default(value, FsdpOptions())
            if sub:
                out["fsdp"] = {k: _plain(v) for k, v in sub.items()}
            continue
        if key == "hardware":
            if value is not None:
                sub = _non_default(value, PlannedHardware(gpu="", gpu_memory=0))
                out["hardware"] = {"gpu": value.gpu, "gpu_memory": value.gpu_memory,
                                   **{k: v for k, v in sub.items()
                                      if k not in ("gpu", "gpu_memory")}}
            continue
        if key == "slurm":
            if value is not None:
                sub = _non_default(value, SlurmOptions())
                out["slurm"] = {k: _plain(v) for k, v in sub.items()}
            continue
        if key == "estimate":
            if value is not None:
                sub = _non_default(value, EstimateInputs(model=value.model))
                for part, cls in (("lora", LoraOptions), ("quantization", QuantizationOptions)):
                    if sub.get(part) is not None:  # the section, with its defaults left out
                        opts = sub[part]
                        sub[part] = _non_default(opts, cls())
                        if part == "lora":  # but the rank and targets always: readers look
                            sub[part] = {"rank": opts.rank, "targets": opts.targets, **sub[part]}
                        else:
                            sub[part] = {"type": opts.type, **sub[part]}
                out["estimate"] = {"model": value.model,
                                   **{k: _plain(v) for k, v in sub.items() if k != "model"}}
            continue
        if value != getattr(default, key):
            out[key] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


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
