"""The Profile: everything a launch needs, and optionally what the estimate needs.

The one description of a profile file: each dataclass field is a key (nested dataclasses are
sections), its annotation the type, its default the value a saved file may leave out, and its
:func:`~trainwiz.checker.option` what is allowed. Reading (validate.py), the accelerate import
and writing (dump.py) are derived from these fields, in this order: the order keys are written.
Choices the estimator also takes are its lists (:mod:`trainwiz.estimator.types`), not copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwiz.checker import option
from trainwiz.estimator.types import (
    ATTENTIONS,
    LOOPS,
    METHODS,
    OPTIMIZERS,
    SHARDINGS,
    STRATEGIES,
)

SCHEMA_VERSION = 1

# Same choices, the names profiles have always used for them.
SHARDING_STRATEGIES = SHARDINGS
ATTENTION = ATTENTIONS
# bf16-pure is not mixed precision: the script loads the model in bf16 and trains it as is
# (weights, gradients, optimizer state in bf16; no autocast). To accelerate that is
# mixed_precision "no": no autocast, and under FSDP no upcast to fp32 master weights.
MIXED_PRECISIONS = ("no", "fp16", "bf16", "fp8", "bf16-pure")
AUTO_WRAP_POLICIES = ("TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP")
BACKWARD_PREFETCH = ("BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH")
STATE_DICT_TYPES = ("SHARDED_STATE_DICT", "FULL_STATE_DICT")
LAUNCHERS = ("torchrun", "accelerate")
DEVICES = ("cuda", "cpu")
RDZV_BACKENDS = ("c10d", "static")
QUANT_TYPES = ("nf4", "fp4")
QUANT_COMPUTE_DTYPES = ("bf16", "fp16")
SCHEDULERS = ("local", "slurm")
FSDP_VERSIONS = (1, 2)
_PLANNED = "the planned hardware names the GPU and its memory in bytes"
# What a plan can ask for at most: far beyond any real run, well below what turns the estimate
# into nonsense (num_processes 1e12 wanted 53 billion TiB of host memory). The wizard's prompts
# take the same bounds from these fields.
MAX_PROCESSES = 1024  # ranks per machine (CPU ranks: no GPU count limits them)
MAX_MACHINES = 4096
MAX_BATCH = 65536  # per GPU micro-batch; grad accumulation steps too
MAX_SEQ_LEN = 1_048_576  # 1M tokens: the longest contexts trained today
MAX_LORA_RANK = 4096
# machine 0 as the other machines reach it: a host name, an IPv4 or an IPv6 address
HOST_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?"
HOST_HELP = "a host name or IP address of machine 0, such as node0, 10.0.0.1 or fe80::1"


@dataclass
class FsdpOptions:
    version: int = option(2, choices=FSDP_VERSIONS)
    # FSDP2: FULL_SHARD <=> reshard_after_forward true
    sharding_strategy: str = option("FULL_SHARD", choices=SHARDING_STRATEGIES, upper=True)
    auto_wrap_policy: str = option("TRANSFORMER_BASED_WRAP", choices=AUTO_WRAP_POLICIES,
                                   upper=True)
    transformer_layer_cls_to_wrap: list[str] = option(default_factory=list)
    min_num_params: int | None = option(None, minimum=0)
    backward_prefetch: str = option("BACKWARD_PRE", choices=BACKWARD_PREFETCH, upper=True)
    forward_prefetch: bool = False
    offload_params: bool = False
    state_dict_type: str = option("SHARDED_STATE_DICT", choices=STATE_DICT_TYPES, upper=True)
    cpu_ram_efficient_loading: bool = True
    sync_module_states: bool = True
    use_orig_params: bool = True
    activation_checkpointing: bool = False


@dataclass
class LoraOptions:
    """PEFT LoraConfig: adapter rank, scaling (alpha), dropout and the modules that get one."""

    rank: int = option(16, minimum=1, maximum=MAX_LORA_RANK, always=True)
    # PEFT's all-linear, or a comma list of module names
    targets: str = option("all-linear", always=True)
    alpha: float | None = option(None, minimum=0)  # None: 2 x rank
    dropout: float = option(0.0, minimum=0, maximum=0.99)  # PEFT's default


@dataclass
class QuantizationOptions:
    """bitsandbytes 4-bit loading (BitsAndBytesConfig) for QLoRA: the QLoRA paper's recipe."""

    type: str = option("nf4", choices=QUANT_TYPES, always=True)  # bnb_4bit_quant_type
    double_quant: bool = True  # bnb_4bit_use_double_quant
    compute_dtype: str = option("bf16", choices=QUANT_COMPUTE_DTYPES)  # bnb_4bit_compute_dtype


@dataclass
class EstimateInputs:
    """What the memory estimate needs beyond the launch settings."""

    model: str = option(help="the estimate needs a model (catalog name, Hugging Face folder, "
                             "config.json or params:N)")
    batch_size: int = option(1, minimum=1, maximum=MAX_BATCH)  # per GPU micro-batch
    seq_len: int = option(2048, minimum=1, maximum=MAX_SEQ_LEN)
    optimizer: str = option("adamw", choices=OPTIMIZERS)
    fused_optimizer: bool = False  # the script uses a fused optimizer kernel (no foreach temporaries)
    grad_accum: int = option(1, minimum=1, maximum=MAX_BATCH)
    activation_checkpointing: bool = False
    attention: str = option("sdpa", choices=ATTENTIONS)
    # custom: outputs kept through backward; trainer: dropped (HF Trainer)
    loop: str = option("custom", choices=LOOPS)
    # For the time estimate: the training length (one of the two) and the network between
    # machines ("400Gbps"), needed when num_machines > 1.
    tokens: int | None = option(None, kind="count", minimum=1, maximum=10**15)
    steps: int | None = option(None, kind="count", minimum=1, maximum=10**12)
    network: str | None = None
    method: str = option("full", choices=METHODS)  # full | lora | qlora
    lora: LoraOptions | None = None  # lora/qlora: None means LoraOptions() defaults
    quantization: QuantizationOptions | None = None  # qlora: None means the QLoRA recipe

    @property
    def lora_options(self) -> LoraOptions:
        return self.lora or LoraOptions()

    @property
    def quantization_options(self) -> QuantizationOptions:
        return self.quantization or QuantizationOptions()


@dataclass
class PlannedHardware:
    """The hardware a plan was made for: what its memory estimate compared with. Opening the
    profile on another box shows this plan and says how the box differs."""

    # the GPU model, e.g. "NVIDIA H100 80GB HBM3" (the smallest one on a mixed box)
    gpu: str = option(help=_PLANNED)
    gpu_memory: int = option(minimum=1, help=_PLANNED)  # bytes per GPU (of the smallest GPU used)
    gpus_per_machine: int = option(1, minimum=1, maximum=MAX_PROCESSES)
    simulated: bool = False  # planned against a simulated box or a preset, not measured


@dataclass
class SlurmOptions:
    """How a ``scheduler: slurm`` profile is submitted: one sbatch job, one task per node."""

    partition: str | None = None  # None: the cluster's default partition
    nodes: int = option(1, minimum=1, maximum=MAX_MACHINES)
    time: str | None = None  # Slurm's time limit format: "90", "4:00:00", "2-00:00:00"
    account: str | None = None
    qos: str | None = None
    sbatch_args: list[str] = option(default_factory=list)  # extra #SBATCH lines: ["--mem=0"]
    run_dir: str | None = None  # a folder every node shares; None: the runs folder in your home


@dataclass
class Profile:
    name: str = option(stored=False)  # the file's name, not a key in it
    version: int = option(SCHEMA_VERSION, minimum=1, always=True)
    description: str | None = None  # one line for `trainwiz profiles list`
    strategy: str = option("ddp", choices=STRATEGIES)
    fsdp: FsdpOptions = option(default_factory=FsdpOptions)
    mixed_precision: str = option("no", choices=MIXED_PRECISIONS)
    device: str = option("cuda", choices=DEVICES)  # "cpu": gloo ranks, no GPU needed
    gpu_ids: list[int] | None = None  # None: all GPUs of this machine
    # per machine; None: one per GPU
    num_processes: int | None = option(None, minimum=1, maximum=MAX_PROCESSES)
    num_machines: int = option(1, minimum=1, maximum=MAX_MACHINES)
    machine_rank: int = option(0, minimum=0, maximum=MAX_MACHINES - 1)
    main_address: str | None = option(None, pattern=HOST_PATTERN, help=HOST_HELP)
    # None: a free port is chosen at launch
    main_port: int | None = option(None, minimum=1, maximum=65535)
    rdzv_backend: str = option("c10d", choices=RDZV_BACKENDS)
    max_restarts: int = option(0, minimum=0)
    launcher: str = option("torchrun", choices=LAUNCHERS)
    python: str | None = None  # interpreter of the training environment; None: `python3` on PATH
    env: dict[str, str] = option(default_factory=dict)
    script: str | None = None
    script_args: list[str] = option(default_factory=list)
    estimate: EstimateInputs | None = None
    scheduler: str = option("local", choices=SCHEDULERS)  # "slurm": submitted with sbatch
    slurm: SlurmOptions | None = None
    hardware: PlannedHardware | None = None  # the hardware the plan was made for

    @property
    def machines(self) -> int:
        """Machines the run spans: Slurm's node count for a Slurm profile, else num_machines."""
        if self.scheduler == "slurm":
            return int(self.slurm.nodes) if self.slurm is not None else 1
        return int(self.num_machines or 1)

    @property
    def accelerate_mixed_precision(self) -> str:
        """What accelerate's ``mixed_precision`` is for this profile (bf16-pure is "no")."""
        return "no" if self.mixed_precision == "bf16-pure" else self.mixed_precision

    @property
    def processes_per_machine(self) -> int | None:
        """Ranks on this machine, when the profile fixes it (None: one per GPU found at launch)."""
        if self.num_processes is not None:
            return self.num_processes
        if self.strategy == "single":
            return 1
        if self.gpu_ids is not None and self.device == "cuda":
            return len(self.gpu_ids)
        return None

    @property
    def world_size(self) -> int | None:
        """Ranks over all machines, when known."""
        per = self.processes_per_machine
        return None if per is None else per * self.machines
