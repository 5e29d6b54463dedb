"""Import and export of accelerate config files (``accelerate config`` / ``accelerate launch
--config_file``). Pure: accelerate itself is never imported here; its file format is.

Known accelerate 1.x quirk this module works around: ``accelerate config`` stores the FSDP1
sharding strategy as ``fsdp_reshard_after_forward``, but ``accelerate launch`` always exports
``FSDP_SHARDING_STRATEGY`` (default FULL_SHARD, filled from ``fsdp_sharding_strategy``) and the
FSDP1 plugin prefers that one. So a SHARD_GRAD_OP / NO_SHARD / HYBRID_SHARD choice is silently
run as FULL_SHARD unless ``fsdp_sharding_strategy`` is written too. The export writes both.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

import trainwiz.profiles.schema as schema
from trainwiz.checker import Checker, KeyPath, field_specs
from trainwiz.estimator.types import FSDP_SHARDINGS, fsdp2_sharding, sharding_of
from trainwiz.profiles.dump import profile_to_dict
from trainwiz.profiles.errors import ProfileError
from trainwiz.profiles.schema import FsdpOptions, Profile
from trainwiz.profiles.validate import profile_from_dict, read_profile

# Top-level accelerate keys that are a profile field under another (or the same) name: their
# values are checked against that field's description, under the accelerate name.
_TOP_AS_PROFILE = {"mixed_precision": "mixed_precision", "num_machines": "num_machines",
                   "machine_rank": "machine_rank", "main_process_ip": "main_address",
                   "main_process_port": "main_port", "rdzv_backend": "rdzv_backend"}
# Top-level keys accelerate's ClusterConfig knows (accelerate 1.x), and what we do with them.
_TOP_MAPPED = set(_TOP_AS_PROFILE) | {"compute_environment", "distributed_type", "use_cpu",
                                      "num_processes", "gpu_ids", "fsdp_config",
                                      "deepspeed_config"}
# Known keys whose default (or listed harmless) values carry no meaning for a local launch.
_TOP_IGNORED_DEFAULTS: dict[str, tuple] = {
    "debug": (False, None),
    "downcast_bf16": ("no", False, None),
    "main_training_function": ("main", None),
    "same_network": (True, False, None),
    "enable_cpu_affinity": (False, None),
    "tpu_env": ([], None),
    "tpu_use_cluster": (False, None),
    "tpu_use_sudo": (False, None),
    "tpu_name": (None,),
    "tpu_zone": (None,),
    "commands": (None,),
    "command_file": (None,),
    "dynamo_config": ({}, None),
    "dynamo_backend": ("NO", "no", None),
    "fp8_config": ({}, None),
    "parallelism_config": ({}, None),
    "megatron_lm_config": ({}, None),
    "ipex_config": ({}, None),
    "mpirun_config": ({}, None),
    "fp16": (False, None),
}
# FSDP keys that are a profile fsdp field (fsdp_version and the sharding keys are read apart).
_FSDP_AS_PROFILE = {f"fsdp_{k}": k for k in (
    "offload_params", "auto_wrap_policy", "transformer_layer_cls_to_wrap", "min_num_params",
    "backward_prefetch", "forward_prefetch", "state_dict_type", "use_orig_params",
    "cpu_ram_efficient_loading", "sync_module_states", "activation_checkpointing")}
_FSDP_KEYS = set(_FSDP_AS_PROFILE) | {"fsdp_version", "fsdp_sharding_strategy",
                                      "fsdp_reshard_after_forward"}
_FSDP_IGNORED_DEFAULTS: dict[str, tuple] = {
    "fsdp_activation_checkpointing_offload": (False, None),
    "fsdp_ignored_modules": (None, ""),
}
_DISTRIBUTED = ("NO", "MULTI_GPU", "MULTI_CPU", "FSDP")
_UNSUPPORTED_DISTRIBUTED = {
    "DEEPSPEED": "DeepSpeed", "MEGATRON_LM": "Megatron-LM", "XLA": "TPU (XLA)",
    "MULTI_NPU": "Ascend NPUs", "MULTI_MLU": "Cambricon MLUs", "MULTI_XPU": "Intel XPUs",
    "MULTI_HPU": "Gaudi HPUs", "MULTI_MUSA": "Moore Threads GPUs", "MULTI_SDAA": "SDAA devices",
    "MULTI_NEURON": "AWS Neuron devices", "TP": "tensor parallelism",
}


def accelerate_default_config_path() -> Path:
    """Where ``accelerate config`` saves: ``$HF_HOME/accelerate/default_config.yaml``, with
    HF_HOME defaulting to ``$XDG_CACHE_HOME/huggingface`` (``~/.cache/huggingface``)."""
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(os.path.expanduser(hf_home)) / "accelerate" / "default_config.yaml"


def is_accelerate_config(data: Any) -> bool:
    """Does a parsed YAML mapping look like an accelerate config rather than a trainwiz profile?"""
    return isinstance(data, dict) and ("distributed_type" in data or "compute_environment" in data)


# --------------------------------------------------------------------------- export

def _world(profile: Profile, num_gpus: int | None) -> tuple[int, int]:
    """(processes per machine, total) as accelerate needs them."""
    per = profile.processes_per_machine
    if per is None:
        if num_gpus:
            per = num_gpus
        else:
            raise ProfileError(
                f"profile '{profile.name}': accelerate needs a process count; set num_processes "
                "or gpu_ids in the profile (it uses every GPU found at launch), or export on "
                "the GPU machine or with --simulate")
    return per, per * profile.machines  # a Slurm profile's machines are its nodes


def to_accelerate_config(profile: Profile, num_gpus: int | None = None) -> dict[str, Any]:
    """The accelerate config (a dict for ``yaml.safe_dump``) with the same meaning as ``profile``.

    ``num_gpus``: ranks on this machine (its GPUs, or the CPU ranks the launcher picked), used
    when the profile leaves the count open.
    Settings accelerate configs cannot hold (interpreter, env, script, estimate inputs, launcher)
    are listed by :func:`accelerate_export_notes`.
    """
    per, total = _world(profile, num_gpus)
    cpu = profile.device == "cpu"
    if profile.strategy == "fsdp":
        if cpu:
            raise ProfileError(f"profile '{profile.name}': accelerate launch runs FSDP on GPUs "
                               "only; device cpu with strategy fsdp needs launcher torchrun")
        distributed = "FSDP"
    elif profile.strategy == "ddp" and total > 1:
        distributed = "MULTI_CPU" if cpu else "MULTI_GPU"
    else:  # single, or DDP with one rank in all: accelerate refuses MULTI_GPU below 2 processes
        distributed = "NO"
    out: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": distributed,
        "mixed_precision": profile.accelerate_mixed_precision,
        "use_cpu": cpu,
        "debug": False,
        "num_machines": profile.machines,
        "machine_rank": profile.machine_rank,
        "num_processes": total,
    }
    if not cpu:
        out["gpu_ids"] = ",".join(map(str, profile.gpu_ids)) if profile.gpu_ids else "all"
    if profile.main_address:
        out["main_process_ip"] = profile.main_address
    if profile.main_port is not None:
        out["main_process_port"] = profile.main_port
    out["rdzv_backend"] = profile.rdzv_backend
    out["same_network"] = True
    out["main_training_function"] = "main"
    if distributed == "FSDP":
        out["fsdp_config"] = _fsdp_to_accelerate(profile.fsdp)
    return out


def _fsdp_to_accelerate(f: FsdpOptions) -> dict[str, Any]:
    cfg: dict[str, Any] = {"fsdp_version": f.version}
    if f.version == 1:
        # Both keys, same value: launch exports FSDP_SHARDING_STRATEGY from the first (which the
        # FSDP1 plugin prefers), and accelerate config's own files use the second.
        cfg["fsdp_sharding_strategy"] = f.sharding_strategy
        cfg["fsdp_reshard_after_forward"] = f.sharding_strategy
    else:
        cfg["fsdp_reshard_after_forward"] = sharding_of(f.sharding_strategy).reshard_after_forward
    cfg["fsdp_offload_params"] = f.offload_params
    cfg["fsdp_auto_wrap_policy"] = f.auto_wrap_policy
    if f.transformer_layer_cls_to_wrap:
        cfg["fsdp_transformer_layer_cls_to_wrap"] = ",".join(f.transformer_layer_cls_to_wrap)
    if f.min_num_params is not None:
        cfg["fsdp_min_num_params"] = f.min_num_params
    if f.version == 1:
        cfg["fsdp_backward_prefetch"] = f.backward_prefetch
        cfg["fsdp_forward_prefetch"] = f.forward_prefetch
        cfg["fsdp_use_orig_params"] = f.use_orig_params
        cfg["fsdp_sync_module_states"] = f.sync_module_states
    cfg["fsdp_state_dict_type"] = f.state_dict_type
    cfg["fsdp_cpu_ram_efficient_loading"] = f.cpu_ram_efficient_loading
    cfg["fsdp_activation_checkpointing"] = f.activation_checkpointing
    return cfg


def accelerate_export_notes(profile: Profile) -> list[str]:
    """What an accelerate config cannot carry from this profile (said to the user on export)."""
    notes = []
    if profile.python:
        notes.append(f"python {profile.python}")
    if profile.env:
        notes.append("env " + ", ".join(sorted(profile.env)))
    if profile.script:
        notes.append(f"script {profile.script}" + (" and its arguments" if profile.script_args
                                                   else ""))
    if profile.max_restarts:
        notes.append(f"max_restarts {profile.max_restarts} (pass --max_restarts to accelerate "
                     "launch)")
    if profile.mixed_precision == "bf16-pure":
        notes.append("mixed_precision bf16-pure (accelerate has no setting for it: exported as "
                     "mixed_precision: no, which keeps autocast off and, under FSDP, the weights "
                     "as loaded; the script must load the model with torch_dtype=torch.bfloat16)")
    if profile.estimate is not None:
        notes.append("estimate inputs (model, batch, sequence length, optimizer, loop)")
    if profile.strategy == "fsdp" and profile.fsdp.version == 2:
        f, d = profile.fsdp, FsdpOptions()
        for key in ("backward_prefetch", "use_orig_params", "sync_module_states"):
            if getattr(f, key) != getattr(d, key):
                notes.append(f"fsdp.{key} (not used by FSDP2)")
    return notes


def accelerate_config_text(profile: Profile, num_gpus: int | None = None) -> str:
    data = to_accelerate_config(profile, num_gpus)
    head = f"# accelerate config exported by trainwiz from profile '{profile.name}'\n"
    notes = accelerate_export_notes(profile)
    if notes:
        head += "# not representable here, kept in the trainwiz profile: " + "; ".join(notes) + "\n"
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


# --------------------------------------------------------------------------- import

_FSDP1_ONLY = ("backward_prefetch", "use_orig_params", "sync_module_states")


def _profile_specs():
    specs = dict(field_specs(Profile))
    # accelerate has no bf16-pure: that is "no" plus a script that loads bf16 weights
    mp = specs["mixed_precision"]
    specs["mixed_precision"] = dataclasses.replace(
        mp, choices=tuple(c for c in mp.choices if c != "bf16-pure"))
    return specs


def _truthy(value: Any) -> Any:
    """accelerate's booleans: true/false, yes/no, 1/0 in any case; anything else as it is."""
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


def _sharding_from(value: Any) -> str | None:
    """An FSDP1 sharding strategy in any form accelerate accepts: name (any case) or 1..4."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        n = int(value)
        return next((s.name for s in FSDP_SHARDINGS.values() if s.number == n), None)
    if isinstance(value, str):
        name = value.strip().upper()
        return name if name in schema.SHARDING_STRATEGIES else None
    return None


def from_accelerate_config(data: Any, *, name: str, source: str,
                           lines: dict[KeyPath, int] | None = None,
                           warnings: list[str] | None = None) -> Profile:
    """A Profile with the same meaning as an accelerate config (LOCAL_MACHINE; NO, MULTI_GPU,
    MULTI_CPU, FSDP versions 1 and 2). What cannot be represented is refused (DeepSpeed,
    SageMaker, ...) or, when harmless, appended to ``warnings``. A ProfileError lists every
    problem at once: keys, values and the combinations a profile refuses."""
    chk = Checker(source, lines, error=ProfileError, warnings=warnings)
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: an accelerate config must be a mapping of keys to values")
    env = data.get("compute_environment", "LOCAL_MACHINE")
    if env != "LOCAL_MACHINE":
        chk.bad_choice(("compute_environment",), env, ("LOCAL_MACHINE",), allowed="LOCAL_MACHINE "
                       "(SageMaker configs cannot be imported)")
        chk.fail_if_any()
    dist = data.get("distributed_type")
    if isinstance(dist, str):
        dist = dist.upper()
    if dist in _UNSUPPORTED_DISTRIBUTED:
        chk.add(("distributed_type",), f"key 'distributed_type': {_UNSUPPORTED_DISTRIBUTED[dist]} "
                f"({dist}) configs are not supported yet; allowed: {', '.join(_DISTRIBUTED)}. "
                "Nothing was imported.")
        chk.fail_if_any()  # the rest of such a file has no meaning here
    elif dist is None:
        chk.add(("distributed_type",), f"key 'distributed_type' is missing; allowed: "
                                       f"{', '.join(_DISTRIBUTED)}")
    elif dist not in _DISTRIBUTED:
        chk.bad_choice(("distributed_type",), data["distributed_type"], _DISTRIBUTED)
        dist = None  # the other keys are still checked; the strategy is unknown
    if data.get("deepspeed_config"):
        chk.add(("deepspeed_config",), "key 'deepspeed_config': DeepSpeed settings are not "
                                       "supported yet; remove them or keep using accelerate")

    known = sorted(_TOP_MAPPED | set(_TOP_IGNORED_DEFAULTS))
    for key, value in data.items():
        if key in _TOP_IGNORED_DEFAULTS and value not in _TOP_IGNORED_DEFAULTS[key]:
            chk.warn((key,), f"'{key}: {value}' has no trainwiz equivalent and is not imported")
        elif key not in known:
            chk.unknown_key((key,), known)

    out: dict[str, Any] = {}
    cpu = _truthy(data.get("use_cpu", False)) is True or dist == "MULTI_CPU"
    if cpu:
        out["device"] = "cpu"
    if dist is not None:
        out["strategy"] = {"NO": "single", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp",
                           "FSDP": "fsdp"}[dist]
    if data.get("mixed_precision") is None and _truthy(data.get("fp16")) is True:
        out["mixed_precision"] = "fp16"
    specs = _profile_specs()
    for src, dst in _TOP_AS_PROFILE.items():
        value = data.get(src)
        if value is None or (src == "main_process_port" and value == 0):  # 0: accelerate picks
            continue
        ok, value = chk.value(value, specs[dst], (src,))
        if ok:
            out[dst] = value
    machines = out.get("num_machines", 1)
    if "rdzv_backend" not in out and machines > 1:
        out["rdzv_backend"] = "static"  # accelerate's default; it matters across machines

    gpu_ids = data.get("gpu_ids")
    if gpu_ids is not None and not cpu and str(gpu_ids).strip().lower() != "all":
        ok, ids = chk.value(gpu_ids, specs["gpu_ids"], ("gpu_ids",))
        if ok:
            out["gpu_ids"] = ids

    nproc = data.get("num_processes")
    if dist == "NO":
        if nproc not in (None, 1, -1):
            chk.warn(("num_processes",), f"num_processes {nproc} with distributed_type NO: "
                                         "accelerate runs one process; imported as one")
    elif nproc is not None and nproc != -1:
        ok, nproc = chk.value(nproc, specs["num_processes"], ("num_processes",))
        if ok and nproc % machines:
            chk.add(("num_processes",), f"key 'num_processes': {nproc} processes do not "
                                        f"divide evenly over {machines} machines")
        elif ok and not ("gpu_ids" in out and len(out["gpu_ids"]) == nproc // machines):
            out["num_processes"] = nproc // machines

    if dist == "FSDP":
        fsdp = _import_fsdp(data.get("fsdp_config") or {}, chk)
        if fsdp:
            out["fsdp"] = fsdp
    elif data.get("fsdp_config") and dist is not None:
        chk.warn(("fsdp_config",), f"fsdp_config is ignored: distributed_type is {dist}")

    if dist is None:
        chk.fail_if_any()  # without a strategy the combinations cannot be judged
    # The accelerate launcher is what these files were written for; keep using it.
    out["launcher"] = "accelerate"
    # The combinations a profile refuses, with the problems above: named by the profile's keys,
    # on the accelerate key's line.
    rules = Checker(source, _profile_lines(data, chk), error=ProfileError, warnings=warnings)
    profile = read_profile(out, rules, name=name)
    chk.problems.extend(rules.problems)
    chk.fail_if_any()
    # Write it through the trainwiz validator once more, so defaults drop out.
    return profile_from_dict(profile_to_dict(profile), source=source, name=name)


def _profile_lines(data: dict, chk: Checker) -> dict[KeyPath, int]:
    """{profile key path: line of the accelerate key it was read from}."""
    pairs = [((dst,), (src,)) for src, dst in _TOP_AS_PROFILE.items()]
    pairs += [(("num_processes",), ("num_processes",)), (("gpu_ids",), ("gpu_ids",)),
              (("device",), ("use_cpu",)), (("strategy",), ("distributed_type",)),
              (("fsdp",), ("fsdp_config",))]
    fsdp = data.get("fsdp_config")
    if isinstance(fsdp, dict):
        written = {k if str(k).startswith("fsdp_") else f"fsdp_{k}": k for k in fsdp}
        for src, dst in [*_FSDP_AS_PROFILE.items(), ("fsdp_version", "version"),
                         ("fsdp_reshard_after_forward", "sharding_strategy"),
                         ("fsdp_sharding_strategy", "sharding_strategy")]:
            if src in written:
                pairs.append((("fsdp", dst), ("fsdp_config", written[src])))
    lines = {}
    for dst, src in pairs:
        if chk.line(src) is not None:
            lines[dst] = chk.line(src)
    return lines


def _import_fsdp(cfg: Any, chk: Checker) -> dict[str, Any]:
    base: KeyPath = ("fsdp_config",)
    if not isinstance(cfg, dict):
        chk.add(base, "key 'fsdp_config' must be a mapping of keys to values")
        return {}
    out: dict[str, Any] = {}
    # Keys may be written with or without the fsdp_ prefix (accelerate adds it when missing).
    norm = {}
    for key, value in cfg.items():
        full = key if str(key).startswith("fsdp_") else f"fsdp_{key}"
        norm[full] = (key, value)
    allowed = sorted(_FSDP_KEYS | set(_FSDP_IGNORED_DEFAULTS))
    for full, (key, value) in norm.items():
        if full in _FSDP_IGNORED_DEFAULTS and value not in _FSDP_IGNORED_DEFAULTS[full]:
            chk.warn(base + (key,), f"'fsdp_config.{key}: {value}' has no trainwiz "
                                    "equivalent and is not imported")
        elif full not in allowed:
            chk.unknown_key(base + (key,), allowed)

    def get(k):
        return norm[k][1] if k in norm else None

    def path(k):
        return base + ((norm[k][0],) if k in norm else (k,))

    specs = field_specs(FsdpOptions)
    raw_version = get("fsdp_version")
    ok, version = chk.value(1 if raw_version is None else raw_version,  # accelerate's default
                            specs["version"], path("fsdp_version"))
    if not ok:  # the other keys are still checked, as accelerate's default version 1
        version = 1
    out["version"] = version

    strat = get("fsdp_sharding_strategy")
    reshard = get("fsdp_reshard_after_forward")
    if version == 1:
        chosen = None
        if strat is not None:
            chosen = _sharding_from(strat)
            if chosen is None:
                chk.bad_choice(path("fsdp_sharding_strategy"), strat, schema.SHARDING_STRATEGIES,
                               allowed=f"{', '.join(schema.SHARDING_STRATEGIES)} (or 1 to 4)")
        if reshard is not None:
            r = _sharding_from(reshard)
            if r is None and isinstance(_truthy(reshard), bool):
                r = fsdp2_sharding(_truthy(reshard))
            if r is None:
                chk.bad_choice(path("fsdp_reshard_after_forward"), reshard,
                               schema.SHARDING_STRATEGIES)
            elif chosen is None and strat is None:
                chosen = r
                if r != "FULL_SHARD":
                    chk.warn(path("fsdp_reshard_after_forward"),
                             f"FSDP1 {r} given only as fsdp_reshard_after_forward: accelerate "
                             f"launch 1.x would run FULL_SHARD (it passes "
                             "fsdp_sharding_strategy, default FULL_SHARD, and the plugin prefers "
                             f"it); imported as {r}, and an export writes both keys")
            elif chosen is not None and r != chosen:
                chk.warn(path("fsdp_reshard_after_forward"),
                         f"fsdp_reshard_after_forward {reshard} differs from "
                         f"fsdp_sharding_strategy {strat}; accelerate's FSDP1 plugin uses the "
                         f"sharding strategy, so did trainwiz ({chosen})")
        if chosen is not None:
            out["sharding_strategy"] = chosen
    else:
        if reshard is not None:
            b = _truthy(reshard)
            if not isinstance(b, bool):
                chk.bad_choice(path("fsdp_reshard_after_forward"), reshard, (True, False),
                               allowed="true, false (with fsdp_version 2)")
            else:
                out["sharding_strategy"] = fsdp2_sharding(b)
        elif strat is not None:
            chk.warn(path("fsdp_sharding_strategy"), "fsdp_sharding_strategy is ignored by "
                                                    "accelerate with fsdp_version 2 (it reads "
                                                    "fsdp_reshard_after_forward); not imported")

    for key, dst in _FSDP_AS_PROFILE.items():
        value = get(key)
        if value is None or (version == 2 and dst in _FSDP1_ONLY):
            continue  # FSDP2 ignores those (accelerate drops them with a warning)
        spec = specs[dst]
        if spec.kind == "bool":
            value = _truthy(value)
        elif spec.kind == "list_str" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        ok, value = chk.value(value, spec, path(key))
        if ok:
            out[dst] = value
    if out.get("auto_wrap_policy", "TRANSFORMER_BASED_WRAP") != "SIZE_BASED_WRAP":
        out.pop("min_num_params", None)  # accelerate ignores it there; so do we
    if out.get("auto_wrap_policy", "TRANSFORMER_BASED_WRAP") != "TRANSFORMER_BASED_WRAP":
        out.pop("transformer_layer_cls_to_wrap", None)
    if version == 1 and out.get("cpu_ram_efficient_loading", True):
        out["sync_module_states"] = True  # what accelerate itself forces
    # accelerate's own defaults where a key is missing differ from trainwiz's.
    if version == 1:
        for dst, acc_default in (("use_orig_params", True), ("sync_module_states", True),
                                 ("cpu_ram_efficient_loading", True)):
            out.setdefault(dst, acc_default)
        out.setdefault("backward_prefetch", "NO_PREFETCH")
        out.setdefault("state_dict_type", "FULL_STATE_DICT")
    out.setdefault("auto_wrap_policy", "NO_WRAP")
    return out
