"""Cross-field rules: what each field allows alone is in the schema; these are the
combinations a launch cannot run (FSDP2 without NO_SHARD, a Slurm profile naming machines, ...)."""

from __future__ import annotations

import re

from trainwiz.checker import Checker
from trainwiz.errors import UsageError
from trainwiz.estimator.types import FSDP_SHARDINGS, sharding_of
from trainwiz.profiles.errors import ProfileError
from trainwiz.profiles.schema import SCHEMA_VERSION, FsdpOptions, Profile
from trainwiz.units import parse_rate


def check_rules(p: Profile, chk: Checker) -> None:
    """Add a problem for each combination of (valid) fields that cannot be used together."""
    if p.version > SCHEMA_VERSION:
        chk.add(("version",), f"key 'version': this file is version {p.version}, written by a "
                              f"newer trainwiz; this one reads version {SCHEMA_VERSION}")
    if p.strategy != "fsdp" and p.fsdp != FsdpOptions() and ("strategy",) not in chk.rejected:
        chk.add(("fsdp",), f"key 'fsdp': FSDP options are set but strategy is "
                           f"'{p.strategy}'; set strategy: fsdp or remove the fsdp section")
    _check_method(p, chk)
    _check_combinations(p, chk)
    _check_slurm(p, chk)


def _check_method(p: Profile, chk: Checker) -> None:
    est = p.estimate
    if est is None or ("estimate", "method") in chk.rejected:  # (a bad method said so)
        return
    if est.lora is not None:
        _check_targets(est.lora.targets, chk)
    if est.method == "full" and est.lora is not None:
        chk.add(("estimate", "lora"), "key 'estimate.lora' is set but estimate.method is full; "
                "set method: lora or qlora, or remove the lora section")
    if est.method != "qlora" and est.quantization is not None:
        chk.add(("estimate", "quantization"), f"key 'estimate.quantization' is for method qlora, "
                f"not {est.method}; set method: qlora or remove the quantization section")
    mp = p.mixed_precision
    if est.method == "qlora" and mp not in ("bf16", "fp16", "fp8") and \
            ("mixed_precision",) not in chk.rejected:
        chk.add(("mixed_precision",), f"key 'mixed_precision': QLoRA computes in bf16 or fp16 "
                f"(bnb_4bit_compute_dtype) over fp32 weights it does not quantize, not "
                f"{'fp32' if mp == 'no' else mp}; with method qlora allowed: bf16, fp16")


def _check_targets(targets: str, chk: Checker) -> None:
    names = [t.strip() for t in targets.split(",")]
    if not any(names):
        chk.add(("estimate", "lora", "targets"), "key 'estimate.lora.targets' is empty; allowed: "
                "all-linear, or a comma list of module names such as q_proj,v_proj")
    elif "all-linear" in [n.lower() for n in names] and len(names) > 1:
        chk.add(("estimate", "lora", "targets"), "key 'estimate.lora.targets': all-linear already "
                "names every linear layer; give it alone, or a list of module names")


# Variables the launcher sets for each rank; a profile that set them would give every rank the
# same RANK (or send the rendezvous elsewhere).
LAUNCHER_OWNED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _check_combinations(p: Profile, chk: Checker) -> None:
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
    if p.device == "cpu" and p.mixed_precision in ("fp16", "fp8"):
        chk.add(("mixed_precision",), f"key 'mixed_precision': {p.mixed_precision} needs a GPU; "
                                      "with device cpu allowed: no, bf16")
    if p.strategy != "fsdp":
        return
    sharding = sharding_of(f.sharding_strategy)
    if world == 1 and sharding.min_gpus > 1:
        chk.add(("fsdp", "sharding_strategy"),
                f"key 'fsdp.sharding_strategy': {f.sharding_strategy} on one process has nothing "
                "to shard across; use 2 or more processes, or strategy single")
    if f.version == 2:
        if sharding.fsdp1_only:
            fsdp2 = ", ".join(s.name for s in FSDP_SHARDINGS.values() if not s.fsdp1_only)
            chk.add(("fsdp", "sharding_strategy"),
                    f"key 'fsdp.sharding_strategy': {f.sharding_strategy} needs FSDP version 1 "
                    f"(FSDP2 knows reshard-after-forward only); with version 2 allowed: {fsdp2}")
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


def _check_slurm(p: Profile, chk: Checker) -> None:
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
    chk = Checker(source or f"profile '{profile.name}'", error=ProfileError)
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
