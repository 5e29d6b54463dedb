"""The Profile: everything a launch needs, and optionally what the estimate needs.

Plain dataclasses; defaults are the values a saved file may leave out. Validation, YAML and the
store live beside this module. This module imports nothing outside the standard library (and the
estimator's plain types, for the choices the two share).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainwiz.estimator.types import LOOPS

SCHEMA_VERSION = 1

STRATEGIES = ("single", "ddp", "fsdp")
SHARDING_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD")
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
OPTIMIZERS = ("adamw", "sgd", "adafactor", "adamw8bit")
ATTENTION = ("sdpa", "eager")
METHODS = ("full", "lora", "qlora")  # full fine-tuning, PEFT LoRA, QLoRA (4-bit base + LoRA)
QUANT_TYPES = ("nf4", "fp4")
QUANT_COMPUTE_DTYPES = ("bf16", "fp16")
SCHEDULERS = ("local", "slurm")


@dataclass
class FsdpOptions:
    version: int = 2
    sharding_strategy: str = "FULL_SHARD"  # FSDP2: FULL_SHARD <=> reshard_after_forward true
    auto_wrap_policy: str = "TRANSFORMER_BASED_WRAP"
    transformer_layer_cls_to_wrap: list[str] = field(default_factory=list)
    min_num_params: int | None = None
    backward_prefetch: str = "BACKWARD_PRE"
    forward_prefetch: bool = False
    offload_params: bool = False
    state_dict_type: str = "SHARDED_STATE_DICT"
    cpu_ram_efficient_loading: bool = True
    sync_module_states: bool = True
    use_orig_params: bool = True
    activation_checkpointing: bool = False


@dataclass
class LoraOptions:
    """PEFT LoraConfig: adapter rank, scaling (alpha), dropout and the modules that get one."""

    rank: int = 16
    alpha: float | None = None  # None: 2 x rank
    dropout: float = 0.0  # PEFT's default
    targets: str = "all-linear"  # PEFT's all-linear, or a comma list of module names


@dataclass
class QuantizationOptions:
    """bitsandbytes 4-bit loading (BitsAndBytesConfig) for QLoRA: the QLoRA paper's recipe."""

    type: str = "nf4"  # bnb_4bit_quant_type
    double_quant: bool = True  # bnb_4bit_use_double_quant
    compute_dtype: str = "bf16"  # bnb_4bit_compute_dtype


@dataclass
class EstimateInputs:
    """What the memory estimate needs beyond the launch settings."""

    model: str  # catalog name, path to a HF folder / config.json, or "params:N"
    batch_size: int = 1  # per GPU micro-batch
    seq_len: int = 2048
    optimizer: str = "adamw"
    fused_optimizer: bool = False  # the script uses a fused optimizer kernel (no foreach temporaries)
    grad_accum: int = 1
    activation_checkpointing: bool = False
    attention: str = "sdpa"
    loop: str = "custom"  # custom: outputs kept through backward; trainer: dropped (HF Trainer)
    # For the time estimate: the training length (one of the two) and the network between
    # machines ("400Gbps"), needed when num_machines > 1.
    tokens: int | None = None
    steps: int | None = None
    network: str | None = None
    method: str = "full"  # full | lora | qlora
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

    gpu: str  # the GPU model, e.g. "NVIDIA H100 80GB HBM3" (the smallest one on a mixed box)
    gpu_memory: int  # bytes per GPU (of the smallest GPU used)
    gpus_per_machine: int = 1
    simulated: bool = False  # planned against a simulated box or a preset, not measured


@dataclass
class SlurmOptions:
    """How a ``scheduler: slurm`` profile is submitted: one sbatch job, one task per node."""

    partition: str | None = None  # None: the cluster's default partition
    nodes: int = 1
    time: str | None = None  # Slurm's time limit format: "90", "4:00:00", "2-00:00:00"
    account: str | None = None
    qos: str | None = None
    sbatch_args: list[str] = field(default_factory=list)  # extra #SBATCH lines: ["--mem=0"]
    run_dir: str | None = None  # a folder every node shares; None: the runs folder in your home


@dataclass
class Profile:
    name: str
    strategy: str = "ddp"
    fsdp: FsdpOptions = field(default_factory=FsdpOptions)
    mixed_precision: str = "no"
    device: str = "cuda"  # "cpu": gloo ranks, no GPU needed
    gpu_ids: list[int] | None = None  # None: all GPUs of this machine
    num_processes: int | None = None  # per machine; None: one per selected GPU
    num_machines: int = 1
    machine_rank: int = 0
    main_address: str | None = None
    main_port: int | None = None  # None: a free port is chosen at launch
    rdzv_backend: str = "c10d"
    max_restarts: int = 0
    launcher: str = "torchrun"
    python: str | None = None  # interpreter of the training environment; None: `python3` on PATH
    env: dict[str, str] = field(default_factory=dict)
    script: str | None = None
    script_args: list[str] = field(default_factory=list)
    estimate: EstimateInputs | None = None
    hardware: PlannedHardware | None = None  # the hardware the plan was made for
    version: int = SCHEMA_VERSION
    description: str | None = None  # one line for `trainwiz profiles list`
    scheduler: str = "local"  # "slurm": submitted with sbatch, see `slurm`
    slurm: SlurmOptions | None = None

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
