"""Turn a Profile into the exact launcher command. Pure: no torch, no sockets, no processes.

Two engines:

* ``torchrun`` — ``<python> -m torch.distributed.run`` with the profile's interpreter. Every
  rank's stdout/stderr goes to a file under ``<run>/torchrun`` (``--log-dir``, ``--redirects 3``;
  torch lays them out as ``<run_id>_*/attempt_N/<local_rank>/{stdout,stderr}.log`` and sets
  ``TORCHELASTIC_ERROR_FILE`` to ``error.json`` beside them).
* ``accelerate`` — ``<python> -m accelerate.commands.launch --config_file <run>/accelerate_config.yaml``
  (the profile exported as an accelerate config); it runs torch's elastic agent in-process, and we
  pass it the same ``--log_dir`` and ``--tee 3`` so rank logs land in the same layout.

Single machine: static rendezvous on ``--master-addr 127.0.0.1 --master-port PORT``.
Several machines: ``--rdzv-backend c10d --rdzv-endpoint MAIN:PORT --rdzv-id RUN`` (or static with
``--node-rank`` when the profile asks for ``rdzv_backend: static``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from trainwiz.errors import TrainwizError
from trainwiz.estimator.types import sharding_of
from trainwiz.launchers.planvars import expand_args, plan_env

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class LaunchCommand:
    """One machine's command: argv plus the environment variables trainwiz adds or changes."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    node_rank: int = 0

    def shell(self) -> str:
        """The command as one line a user can paste into a shell on that machine."""
        import shlex

        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        cmd = " ".join(shlex.quote(a) for a in self.argv)
        return f"{prefix} {cmd}".strip()


def interpreter(profile) -> str:
    """The training environment's Python: the profile's, else ``python3`` on PATH."""
    return profile.python or "python3"


def nproc_per_node(profile, num_gpus_available: int | None = None) -> int:
    """Processes on this machine: the profile's, else one per selected GPU (cuda) or 1 (cpu)."""
    if profile.num_processes:
        return int(profile.num_processes)
    per = getattr(profile, "processes_per_machine", None)
    if per:
        return int(per)
    if profile.device == "cpu":
        return 1
    if profile.gpu_ids:
        return len(profile.gpu_ids)
    return max(1, int(num_gpus_available or 1))


def _bool(value) -> str:
    return "true" if value else "false"


def accelerate_env(profile) -> dict[str, str]:
    """The environment ``accelerate launch`` would give the ranks, for a torchrun launch.

    Mirrors accelerate 1.15 ``accelerate/utils/launch.py:prepare_multi_gpu_env`` so that a script
    calling ``Accelerator()`` under plain torchrun gets the profile's settings:

    * always: ``ACCELERATE_MIXED_PRECISION`` (no|fp16|bf16|fp8), ``ACCELERATE_DYNAMO_BACKEND=NO``
      and the other ``ACCELERATE_DYNAMO_*`` defaults, and ``ACCELERATE_USE_CPU=true`` for a cpu
      profile (so ``Accelerator()`` picks gloo/MULTI_CPU under torchrun);
    * FSDP profiles: ``ACCELERATE_USE_FSDP=true``, ``FSDP_VERSION``, ``FSDP_SHARDING_STRATEGY``
      (FSDP1 only; FSDP2 reads the next one),
      ``FSDP_RESHARD_AFTER_FORWARD`` (FSDP2: true for FULL_SHARD/HYBRID_SHARD, false otherwise;
      FSDP1: the strategy name), ``FSDP_BACKWARD_PREFETCH`` (FSDP1 only), ``FSDP_FORWARD_PREFETCH``,
      ``FSDP_USE_ORIG_PARAMS``, ``FSDP_SYNC_MODULE_STATES``, ``FSDP_OFFLOAD_PARAMS``,
      ``FSDP_AUTO_WRAP_POLICY``, ``FSDP_MIN_NUM_PARAMS`` (SIZE_BASED_WRAP only),
      ``FSDP_TRANSFORMER_CLS_TO_WRAP`` (comma list, when set), ``FSDP_STATE_DICT_TYPE``,
      ``FSDP_CPU_RAM_EFFICIENT_LOADING``, ``FSDP_ACTIVATION_CHECKPOINTING`` and
      ``FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD=false``.

    The test suite checks these against what accelerate's own launcher builds for the profile's
    exported config. Not covered: fp8 recipes (``ACCELERATE_FP8_*``), DeepSpeed, Megatron.
    """
    env = {"ACCELERATE_MIXED_PRECISION": str(profile.accelerate_mixed_precision or "no"),
           # accelerate's defaults for torch.compile: off
           "ACCELERATE_DYNAMO_BACKEND": "NO", "ACCELERATE_DYNAMO_MODE": "default",
           "ACCELERATE_DYNAMO_USE_FULLGRAPH": "False", "ACCELERATE_DYNAMO_USE_DYNAMIC": "False",
           "ACCELERATE_DYNAMO_USE_REGIONAL_COMPILATION": "False"}
    if profile.device == "cpu":
        env["ACCELERATE_USE_CPU"] = "true"
    if profile.strategy != "fsdp":
        return env
    fsdp = profile.fsdp
    version = int(getattr(fsdp, "version", 2) or 2)
    strategy = fsdp.sharding_strategy
    env["ACCELERATE_USE_FSDP"] = "true"
    env["FSDP_VERSION"] = str(version)
    if version == 2:  # FSDP2 takes a bool: reshard after forward (FULL_SHARD) or not
        env["FSDP_RESHARD_AFTER_FORWARD"] = _bool(sharding_of(strategy).reshard_after_forward)
    else:
        env["FSDP_SHARDING_STRATEGY"] = strategy
        env["FSDP_RESHARD_AFTER_FORWARD"] = strategy
        env["FSDP_BACKWARD_PREFETCH"] = fsdp.backward_prefetch
    env["FSDP_FORWARD_PREFETCH"] = _bool(fsdp.forward_prefetch)
    env["FSDP_USE_ORIG_PARAMS"] = _bool(fsdp.use_orig_params)
    env["FSDP_SYNC_MODULE_STATES"] = _bool(fsdp.sync_module_states)
    env["FSDP_OFFLOAD_PARAMS"] = _bool(fsdp.offload_params)
    env["FSDP_AUTO_WRAP_POLICY"] = fsdp.auto_wrap_policy
    if fsdp.auto_wrap_policy == "SIZE_BASED_WRAP":
        env["FSDP_MIN_NUM_PARAMS"] = str(int(fsdp.min_num_params or 0))
    if fsdp.transformer_layer_cls_to_wrap:
        env["FSDP_TRANSFORMER_CLS_TO_WRAP"] = ",".join(fsdp.transformer_layer_cls_to_wrap)
    env["FSDP_STATE_DICT_TYPE"] = fsdp.state_dict_type
    env["FSDP_CPU_RAM_EFFICIENT_LOADING"] = _bool(fsdp.cpu_ram_efficient_loading)
    env["FSDP_ACTIVATION_CHECKPOINTING"] = _bool(fsdp.activation_checkpointing)
    env["FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD"] = "false"
    return env


def launch_env(profile) -> dict[str, str]:
    """Environment changes for the launcher: the profile's env, devices, accelerate's variables."""
    env: dict[str, str] = {}
    if profile.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif profile.gpu_ids is not None:
        # gpu_ids are nvidia-smi's (NVML's, PCI bus order) numbers, as `trainwiz gpus` shows;
        # CUDA numbers "fastest first" unless told otherwise.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in profile.gpu_ids)
    if profile.launcher == "torchrun":
        env.update(accelerate_env(profile))
    elif profile.device == "cpu":  # accelerate's torchrun path needs it to pick gloo/MULTI_CPU
        env["ACCELERATE_USE_CPU"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({str(k): str(v) for k, v in (profile.env or {}).items()})
    return env


def rdzv_id(host: str, port: int) -> str:
    """The rendezvous id every machine of a job must share: derived from the endpoint, so each
    machine's own ``trainwiz launch`` (or the printed command) finds the others."""
    return f"trainwiz-{host}-{port}".replace(":", "-")


def _target(script: str, args: list[str], module: bool, dash_module: str,
            rank_entry: str | None = None) -> list[str]:
    if rank_entry:  # each rank runs rank_entry.py, which runs the script (see that module)
        return [rank_entry, *(["-m"] if module else []), script, *args]
    return ([dash_module, script] if module else [script]) + list(args)


def rank_entry_path() -> str:
    """The file every rank of a launched run starts with (:mod:`trainwiz.launchers.rank_entry`):
    a plain script, so the training environment needs no trainwiz."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "rank_entry.py")


# trainwiz's own entry points (the supervisor, its watchdog, a Slurm node's task), started in a
# fresh interpreter: ``python -c BOOT TRAINWIZ_ROOT ARGS...`` runs ``trainwiz.launchers.<mod>.main``
BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
        "from trainwiz.launchers.{mod} import main; sys.exit(main(sys.argv[2:]))")


def boot_argv(module: str, *args: str) -> list[str]:
    """argv that runs ``trainwiz.launchers.<module>.main(args)`` with this trainwiz on the path."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    return [sys.executable, "-c", BOOT.format(mod=module), root, *args]


def build_command(profile, script: str, args: list[str] | None = None, *, run_dir: str,
                  run_id: str, port: int, node_rank: int | None = None, module: bool = False,
                  nproc: int | None = None, accelerate_config: str | None = None,
                  python: str | None = None, rank_entry: str | None = None) -> LaunchCommand:
    """The launcher argv and env changes for machine ``node_rank`` (default: the profile's).

    ``rank_entry`` (a launch on this machine: :func:`rank_entry_path`) runs each rank through
    that wrapper, which keeps its output in order and survives a full disk. The plan reaches
    every rank: ``TRAINWIZ_*`` variables in the environment and ``{name}`` placeholders in
    ``args`` expanded (see :mod:`trainwiz.launchers.planvars`)."""
    args = expand_args(list(args or []), profile, run_dir)
    node_rank = profile.machine_rank if node_rank is None else node_rank
    nproc = nproc or nproc_per_node(profile)
    nnodes = int(profile.num_machines or 1)
    python = python or interpreter(profile)
    log_dir = f"{run_dir}/torchrun"
    env = launch_env(profile)
    env.update({k: v for k, v in plan_env(profile, run_dir).items() if k not in env})
    if nnodes > 1 and not profile.main_address:
        raise TrainwizError(f"profile {profile.name!r}: field 'main_address' is required when "
                            f"num_machines is {nnodes} (the address of machine 0)")
    host = profile.main_address if nnodes > 1 else "127.0.0.1"

    if profile.launcher == "accelerate":
        config = accelerate_config or f"{run_dir}/accelerate_config.yaml"
        argv = [python, "-m", "accelerate.commands.launch", "--config_file", config,
                "--num_processes", str(nproc * nnodes), "--num_machines", str(nnodes),
                "--machine_rank", str(node_rank), "--main_process_ip", host,
                "--main_process_port", str(port), "--max_restarts", str(profile.max_restarts),
                "--log_dir", log_dir, "--tee", "3"]
        # A cpu profile still goes through accelerate's torchrun path (its --cpu runs one plain
        # process); ACCELERATE_USE_CPU=true in the env makes the ranks pick gloo.
        if nnodes > 1 and profile.rdzv_backend:
            argv += ["--rdzv_backend", profile.rdzv_backend]
        if module and not rank_entry:
            argv += ["--module"]
        argv += [script, *args] if not rank_entry else _target(script, args, module, "",
                                                               rank_entry)
        return LaunchCommand(argv=argv, env=env, node_rank=node_rank)

    argv = [python, "-m", "torch.distributed.run", "--nnodes", str(nnodes),
            "--nproc-per-node", str(nproc)]
    if nnodes > 1 and profile.rdzv_backend == "c10d":
        argv += ["--node-rank", str(node_rank), "--rdzv-backend", "c10d",
                 "--rdzv-endpoint", f"{host}:{port}", "--rdzv-id", rdzv_id(host, port)]
    else:
        argv += ["--node-rank", str(node_rank), "--master-addr", host, "--master-port", str(port)]
        if nnodes > 1:
            argv += ["--rdzv-id", rdzv_id(host, port)]
    argv += ["--max-restarts", str(int(profile.max_restarts or 0)),
             "--log-dir", log_dir, "--redirects", "3"]
    argv += _target(script, args, module, "-m", rank_entry)
    return LaunchCommand(argv=argv, env=env, node_rank=node_rank)


def build_all_nodes(profile, script: str, args: list[str] | None = None, **kw) -> list[LaunchCommand]:
    """The command for every machine of the profile, machine 0 first."""
    kw.pop("node_rank", None)
    return [build_command(profile, script, args, node_rank=r, **kw)
            for r in range(int(profile.num_machines or 1))]
