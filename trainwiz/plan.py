"""The plan of a training run: one headless value shared by the full-screen wizard,
``trainwiz config --plain`` and the Launch screen.

A plan is what to train (the model string), how (the estimator's ``TrainConfig``), on how many
machines, on which GPUs of each, and the hardware it is made for (a ``Box``: this machine's GPUs,
a simulated box, a preset, or the record a saved profile carries). It is made from a profile or
from hardware, changed by a suggestion's ``change`` (GPU counts beyond one machine become more
machines; a GPU subset becomes GPU ids), priced against the GPUs it uses (one verdict per GPU),
and saved as a profile that records the hardware it was made for.

Pure: imports no UI, NVML, psutil or torch. Every conversion between a Profile and a TrainConfig,
and every model lookup (``resolve_model``), goes through here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from trainwiz.estimator.fit import estimate as price
from trainwiz.estimator.memory import fit_on, usable_memory
from trainwiz.estimator.catalog import model_from_params
from trainwiz.estimator.timing import time_hardware, time_plan
from trainwiz.estimator.catalog import resolve_model as resolve_named_model
from trainwiz.estimator.types import (
    Estimate,
    ModelSpec,
    Suggestion,
    TrainConfig,
    sharding_of,
    verdict_of,
    worst_verdict,
)
from trainwiz.profiles.estimator_inputs import estimate_request, mixed_precision_for, model_argument
from trainwiz.profiles.schema import (
    MAX_PROCESSES,
    EstimateInputs,
    FsdpOptions,
    LoraOptions,
    PlannedHardware,
    Profile,
    QuantizationOptions,
    SlurmOptions,
)

GPUS_PER_PLANNED_MACHINE = 8  # a GPU preset planned for: machines of this many of them
BUSY = 0.98  # a GPU with less than this share free is in use by others: judged by what is free


DEFAULT_SEQ_LEN = 2048


def default_seq_len(model: ModelSpec | None = None) -> int:
    """The sequence length a plan starts with, in the CLI, the wizard and ``config --plain``:
    2048, or the model's own maximum when it has fewer positions (gpt2: 1024), since a longer
    sequence is not a run that model can do."""
    most = getattr(model, "max_position", None)
    return min(DEFAULT_SEQ_LEN, most) if most else DEFAULT_SEQ_LEN


def default_strategy(num_gpus: int) -> str:
    """The strategy a plan starts with: one process on one GPU, DDP on several. DDP is what
    torchrun and accelerate run by default and the fastest when a full copy fits; when it does
    not fit, the suggestions price FSDP FULL_SHARD (and its combinations) first, so both are
    seen."""
    return "ddp" if num_gpus > 1 else "single"


def resolve_model(spec: str) -> ModelSpec:
    """The one model resolver: ``params:N``, a catalog name, a Hugging Face id, folder or
    config.json. Raises ``TrainwizError`` (UsageError) with what was wrong."""
    name, params = model_argument(spec.strip())
    if params is not None:
        return model_from_params(params)
    return resolve_named_model(name or spec)


def stored_model(spec: str, cwd: str | Path | None = None) -> str:
    """The model string as a profile keeps it: a relative path made absolute (a profile is
    opened from anywhere), anything else as typed."""
    spec = spec.strip()
    if not spec or spec.startswith("params:") or spec.startswith(("/", "~")):
        return spec
    path = Path(cwd or Path.cwd()) / spec
    if path.exists():
        return str(path.resolve())
    return spec


# --------------------------------------------------------------------------- hardware

@dataclass(frozen=True)
class Gpu:
    """One GPU a plan can use: what the estimate needs of a reading or a record."""

    index: int
    name: str
    memory_total: int | None  # bytes; None: unknown
    memory_free: int | None = None  # set only when others use part of it
    supports_bf16: bool | None = None

    @property
    def usable(self) -> int | None:
        return usable_memory(self.memory_total, self.memory_free)


@dataclass(frozen=True)
class Box:
    """The GPUs of one machine a plan is for (every machine of a plan is alike)."""

    gpus: tuple[Gpu, ...]
    label: str  # "this box", "H100-80GB", "the profile's plan"
    simulated: bool = False  # not GPUs measured on this machine
    here: bool = True  # this machine (measured or simulated), not a preset or a record

    @property
    def size(self) -> int:
        return len(self.gpus)

    def describe(self) -> str:
        """``8× NVIDIA H100 80GB HBM3 (simulated)``, ``4× A100 + 4× L4``, ``no GPU``."""
        if not self.gpus:
            return "no GPU (unknown memory)"
        names = list(dict.fromkeys(g.name for g in self.gpus))
        text = " + ".join(f"{sum(g.name == n for g in self.gpus)}× {n}" for n in names)
        return text + (" (simulated)" if self.simulated else "")


def box_from_gpus(gpus, *, simulated: bool = False, label: str = "this box") -> Box:
    """A Box from ``GpuInfo`` readings: a GPU others use is judged by its free memory."""
    out = []
    for g in gpus:
        total, free = g.memory_total, g.memory_free
        busy = total and free is not None and free < BUSY * total
        out.append(Gpu(g.index, g.name, total, free if busy else None, g.supports_bf16))
    return Box(tuple(out), label, simulated=simulated, here=True)


def box_from_preset(preset, count: int = GPUS_PER_PLANNED_MACHINE) -> Box:
    """Machines of ``count`` idle GPUs of a preset (``trainwiz.hardware.PRESETS`` values)."""
    bf16 = float(preset.compute_capability) >= 8.0
    gpus = tuple(Gpu(i, preset.name, preset.memory_total, None, bf16) for i in range(count))
    return Box(gpus, preset.key, simulated=True, here=False)


def box_from_record(hardware: PlannedHardware) -> Box:
    """The hardware a saved profile was planned for."""
    gpus = tuple(Gpu(i, hardware.gpu, hardware.gpu_memory)
                 for i in range(hardware.gpus_per_machine))
    return Box(gpus, "the profile's plan", simulated=hardware.simulated, here=False)


def record_of(box: Box, used: tuple[Gpu, ...]) -> PlannedHardware | None:
    """What a profile keeps of the hardware: the smallest GPU used and how many per machine."""
    known = [g for g in used if g.memory_total]
    if not known:
        return None
    smallest = min(known, key=lambda g: g.memory_total)
    return PlannedHardware(gpu=smallest.name, gpu_memory=smallest.memory_total,
                           gpus_per_machine=len(used), simulated=box.simulated)


# --------------------------------------------------------------------------- the estimate

@dataclass(frozen=True)
class GpuFit:
    """The verdict on one GPU the plan uses."""

    gpu: Gpu
    machine: int  # 0-based; every machine is alike, so rows for machine > 0 repeat machine 0
    fits: bool | None
    verdict: str


@dataclass(frozen=True)
class FitRow:
    """Identical GPUs as one row: ``GPU0-7  8× H100 …`` (× machines)."""

    label: str  # "GPU0", "GPU0-7", "GPU0,2"
    count: int  # GPUs in the row over all machines
    gpu: Gpu
    fits: bool | None
    verdict: str


@dataclass(frozen=True)
class PlanEstimate:
    """What the estimator says about a plan: the memory of one step (the same on every GPU),
    one verdict per GPU, the overall verdict (the worst) and the suggestions."""

    estimate: Estimate
    gpus: tuple[GpuFit, ...]
    suggestions: tuple[Suggestion, ...]
    machines: int = 1

    @property
    def verdict(self) -> str:
        if not self.gpus:
            return self.estimate.verdict
        return worst_verdict(g.verdict for g in self.gpus)

    @property
    def fits(self) -> bool | None:
        return verdict_of(self.verdict).fits

    @property
    def decisive(self) -> Gpu | None:
        """The GPU the overall verdict is about (the one with the least room)."""
        known = [f.gpu for f in self.gpus if f.gpu.usable is not None]
        return min(known, key=lambda g: g.usable) if known else None

    def rows(self) -> tuple[FitRow, ...]:
        """Identical GPUs of one machine grouped (same name, memory, free and verdict)."""
        rows: list[list[GpuFit]] = []
        for fit in (f for f in self.gpus if f.machine == 0):
            key = (fit.gpu.name, fit.gpu.memory_total, fit.gpu.memory_free, fit.verdict)
            last = rows[-1][0] if rows else None
            if last is not None and (last.gpu.name, last.gpu.memory_total, last.gpu.memory_free,
                                     last.verdict) == key:
                rows[-1].append(fit)
            else:
                rows.append([fit])
        out = []
        for group in rows:
            ids = [f.gpu.index for f in group]
            if len(ids) == 1:
                label = f"GPU{ids[0]}"
            elif ids == list(range(ids[0], ids[-1] + 1)):
                label = f"GPU{ids[0]}-{ids[-1]}"
            else:
                label = "GPU" + ",".join(map(str, ids))
            first = group[0]
            out.append(FitRow(label, len(group) * self.machines, first.gpu, first.fits,
                              first.verdict))
        return tuple(out)


# --------------------------------------------------------------------------- the plan

# Keys a change may hold besides TrainConfig's fields.
PLAN_KEYS = ("machines", "gpus_per_machine", "gpu_ids", "tokens", "scheduler", "partition")


@dataclass(frozen=True)
class Plan:
    box: Box
    config: TrainConfig = field(default_factory=lambda: TrainConfig(seq_len=DEFAULT_SEQ_LEN))
    model: str = ""
    machines: int = 1
    gpu_ids: tuple[int, ...] | None = None  # GPUs of each machine; None: the box's first ones
    device: str = "cuda"
    base: Profile | None = None  # an opened profile: what the plan has no field for is kept
    tokens: int | None = None  # training length in tokens (for the time estimate)
    steps: int | None = None  # … or in optimizer steps (from a profile)
    scheduler: str = "local"  # "slurm": submitted with sbatch; Slurm picks the machines
    partition: str | None = None  # with Slurm: the partition planned for (None: the default)

    # -- made from ---------------------------------------------------------------------
    @classmethod
    def for_box(cls, box: Box, model: str = "") -> Plan:
        """A sensible start on a box: all its GPUs (``default_strategy``), bf16 unless a GPU is
        known not to have it (then fp16), ``default_seq_len`` (the model's maximum when it is
        shorter: set when the model is known)."""
        n = max(box.size, 1)
        no_bf16 = any(g.supports_bf16 is False for g in box.gpus)
        cfg = TrainConfig(strategy=default_strategy(n), num_gpus=n, seq_len=DEFAULT_SEQ_LEN,
                          precision="fp16" if no_bf16 else "bf16")
        return cls(box=box, config=cfg, model=model)

    @classmethod
    def from_profile(cls, profile: Profile, here: Box) -> Plan:
        """The plan a profile holds, for the hardware it was planned for (its record) unless
        this box is that hardware; ``differs(here)`` says how this box differs."""
        record = profile.hardware
        box = here
        if record is not None and not _matches(record, here):
            box = box_from_record(record)
        per = profile.processes_per_machine
        if per is None:
            per = len(profile.gpu_ids) if profile.gpu_ids else max(box.size, 1)
        draft = profile if profile.estimate is not None else dataclasses.replace(
            profile, estimate=EstimateInputs(model=""))
        model, cfg = estimate_request(draft, per)
        gpu_ids = tuple(profile.gpu_ids) if profile.gpu_ids and box.here else None
        est = profile.estimate
        return cls(box=box, config=cfg, model=model or "", machines=profile.machines,
                   gpu_ids=gpu_ids, device=profile.device, base=profile,
                   scheduler=profile.scheduler,
                   partition=profile.slurm.partition if profile.slurm is not None else None,
                   tokens=getattr(est, "tokens", None), steps=getattr(est, "steps", None))

    # -- what it uses ------------------------------------------------------------------
    @property
    def gpus_per_machine(self) -> int:
        return max(self.config.num_gpus // max(self.machines, 1), 1)

    def used_gpus(self) -> tuple[Gpu, ...]:
        """The GPUs of one machine the run uses."""
        per = self.gpus_per_machine
        if self.gpu_ids is not None:
            by_index = {g.index: g for g in self.box.gpus}
            if all(i in by_index for i in self.gpu_ids):
                return tuple(by_index[i] for i in self.gpu_ids)
        if self.box.size >= per:
            return self.box.gpus[:per]
        unknown = Gpu(0, "GPU of unknown memory", None)
        return self.box.gpus + tuple(dataclasses.replace(unknown, index=i)
                                     for i in range(self.box.size, per))

    def max_per_machine(self) -> int:
        """Ranks one machine can take: its GPUs (CPU ranks: no such limit here; preflight
        compares them with the cores)."""
        if self.device == "cpu":
            return MAX_PROCESSES
        return self.box.size or GPUS_PER_PLANNED_MACHINE

    def differs(self, here: Box) -> str | None:
        """One plain line when the plan was made for other hardware than this box."""
        if self.box.here:
            if self.box.size and self.gpus_per_machine > self.box.size:
                return (f"This box has {self.box.size} GPUs; the plan uses "
                        f"{self.gpus_per_machine} per machine.")
            return None
        planned = f"{self.gpus_per_machine}× {self.used_gpus()[0].name}" \
            + (" (simulated)" if self.box.simulated else "")
        return f"Planned for {planned}; this box has {here.describe()}."

    # -- changing it ---------------------------------------------------------------------
    def with_model(self, model: str) -> Plan:
        return dataclasses.replace(self, model=model.strip())

    def on_box(self, box: Box) -> Plan:
        """The same plan for other hardware: the GPU count is kept (as machines when one
        machine has fewer), GPU ids only when the new box has them."""
        ids = self.gpu_ids if self.gpu_ids and box.here and all(
            i in {g.index for g in box.gpus} for i in self.gpu_ids) else None
        moved = dataclasses.replace(self, box=box, gpu_ids=ids)
        return moved.with_changes({"num_gpus": self.config.num_gpus})

    def with_changes(self, changes: dict) -> Plan:
        """Apply a form edit or a suggestion's ``change``: TrainConfig fields, ``machines``,
        ``gpus_per_machine``, ``gpu_ids``. ``num_gpus`` counts GPUs over all machines: more than
        one machine has becomes more machines."""
        changes = dict(changes)
        plan = self
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        cfg_changes = {k: v for k, v in changes.items() if k in known and k != "num_nodes"}
        ids = changes.get("gpu_ids", plan.gpu_ids if "num_gpus" not in changes
                          and "gpus_per_machine" not in changes else None)
        machines = int(changes.get("machines", plan.machines))
        per = int(changes.get("gpus_per_machine", plan.gpus_per_machine))
        if "num_gpus" in changes:
            total = int(changes["num_gpus"])
            if ids is not None:
                per, machines = len(ids), max(1, math.ceil(total / len(ids)))
            else:
                most = plan.max_per_machine()
                machines = max(1, math.ceil(total / most))
                per = math.ceil(total / machines)
        if ids is not None:
            per = len(ids)
        strategy = cfg_changes.get("strategy", plan.config.strategy)
        if strategy == "single":
            machines, per = 1, 1
            ids = ids[:1] if ids else None
        elif plan.config.strategy == "single" and "strategy" in cfg_changes \
                and "num_gpus" not in changes and "gpus_per_machine" not in changes:
            per = max(min(plan.max_per_machine(), max(plan.box.size, 2)), 1)
        if "tokens" in changes:  # a length in tokens replaces one in steps
            plan = dataclasses.replace(plan, tokens=changes["tokens"] or None, steps=None)
        if "scheduler" in changes:
            plan = dataclasses.replace(plan, scheduler=changes["scheduler"])
        if "partition" in changes:
            plan = dataclasses.replace(plan, partition=changes["partition"] or None)
        if plan.scheduler == "slurm":
            ids = None  # Slurm assigns each node's GPUs
        per = max(1, min(per, plan.max_per_machine()))
        cfg_changes.update(num_gpus=per * machines, num_nodes=machines)
        if cfg_changes.get("strategy", plan.config.strategy) == "ddp" and per * machines == 1:
            cfg_changes["strategy"] = "single"
        return dataclasses.replace(plan, config=plan.config.with_changes(**cfg_changes),
                                   machines=machines,
                                   gpu_ids=tuple(ids) if ids is not None else None)

    # -- pricing it ----------------------------------------------------------------------
    def estimate(self, model: ModelSpec, suggestions: bool = True,
                 subsets: bool = True, available_gpus: int | None = None) -> PlanEstimate:
        """The memory of one step, judged on every GPU the plan uses (on a mixed or busy box
        the smallest room decides), and the changes that would make it fit.

        ``available_gpus``: the GPUs a suggestion may use without more hardware; by default the
        plan's own (``trainwiz estimate`` gives the box's, so a run on fewer GPUs than the box
        has is shown what the others would add)."""
        used = self.used_gpus()
        totals = [g.memory_total for g in used if g.memory_total]
        cap = min(totals) if totals else None
        frees = [g.memory_free for g in used if g.memory_free is not None]
        free = min(frees) if frees and cap else None
        # more GPUs than the plan has is judged as a bigger plan (so combinations that fit
        # these GPUs are searched too), whichever way the hardware was chosen
        available = available_gpus or self.config.num_gpus
        est = price(model, self.config, gpu_memory=cap, gpu_free=free,
                    suggestions=suggestions, available_gpus=available)
        fits = []
        for machine in range(self.machines):
            for g in used:
                ok, verdict = fit_on(est.per_gpu.total, g.memory_total, g.memory_free,
                                     lower_bound=bool(est.not_estimated))
                fits.append(GpuFit(g, machine, ok, verdict))
        sugs = [self._explain(s, available) for s in est.suggestions] if suggestions else []
        if suggestions and subsets and est.verdict in ("does not fit", "tight"):
            sugs = self._with_subset(model, est, sugs)
        return PlanEstimate(est, tuple(fits), tuple(sugs[:9]), self.machines)

    def _explain(self, sug: Suggestion, available: int) -> Suggestion:
        """Say once when a suggestion needs more machines than the plan has."""
        wanted = sug.change.get("num_gpus")
        if not wanted:
            return sug
        # the estimator counts against the available GPUs; the plan says it in machines instead
        note = sug.note.replace(f" (this box has {available})", "")
        after = self.with_changes(dict(sug.change))
        change = sug.change
        if after.machines > self.machines:
            per = after.gpus_per_machine
            note += f" — {after.machines} machines × {per} GPU{'s' if per != 1 else ''}"
            # the machines are part of the change: its time is that of so many machines (not
            # timed without the network between them), and its flags say --num-nodes
            change = {**change, "num_nodes": after.machines}
        return dataclasses.replace(sug, note=note, change=change)

    def _with_subset(self, model: ModelSpec, est: Estimate, sugs: list) -> list:
        """The GPU-subset suggestion placed after the other changes that fit."""
        suggestion = self.gpu_subset_suggestion(model)
        if suggestion is None:
            return sugs
        fitting = [s for s in sugs if s.fits]
        return fitting + [suggestion] + [s for s in sugs if not s.fits]

    def gpu_subset_suggestion(self, model: ModelSpec) -> Suggestion | None:
        """On a mixed or busy box: the largest set of GPUs that fits (leaving out the busy or
        smaller ones), alone or with the mildest change that makes it fit there; ``change``
        holds their ``gpu_ids``."""
        if not self.box.here or self.box.size < 2 or self.config.strategy == "single":
            return None
        rooms = sorted({g.usable for g in self.box.gpus if g.usable is not None})
        for room in rooms:
            keep = tuple(g for g in self.box.gpus if g.usable is not None and g.usable >= room)
            if not keep or len(keep) == self.box.size:
                continue
            left_out = [g.index for g in self.box.gpus if g not in keep]
            ids = tuple(g.index for g in keep)
            subset = self.with_changes({"gpu_ids": ids, "num_gpus": len(ids) * self.machines})
            sub = subset.estimate(model, suggestions=True, subsets=False)
            if sub.fits or sub.verdict == "may fit":
                change, extra, total = {}, "", sub.estimate.per_gpu.total
            else:
                mild = next((s for s in sub.suggestions if s.fits and "num_gpus" not in s.change
                             and "gpu_ids" not in s.change), None)
                if mild is None:
                    continue
                change, extra, total = dict(mild.change), f" + {mild.note}", mild.total
            note = (f"use GPU{'s' if len(ids) > 1 else ''} {','.join(map(str, ids))} (leave out "
                    f"{'GPU ' if len(left_out) == 1 else 'GPUs '}"
                    f"{','.join(map(str, left_out))}){extra}")
            # num_gpus too: the time of the subset is the time on its GPUs (with gpu_ids alone
            # it was timed on the whole box, the same tokens/s as keeping every GPU)
            return Suggestion(change={"gpu_ids": list(ids), "num_gpus": len(ids) * self.machines,
                                      **change}, total=total, note=note,
                              fits=True, slower=bool(change.get("offload_params")),
                              not_estimated=sub.estimate.not_estimated)
        return None

    def time(self, result: PlanEstimate):
        """How long a step and the run take on the GPUs the plan uses (data-sheet figures for
        their model): ``(TimeEstimate, timed suggestions)`` of ``trainwiz.estimator.timing``."""
        gpus = [{"index": g.index, "name": g.name} for g in self.used_gpus()]
        hardware = time_hardware(gpus)
        est = dataclasses.replace(result.estimate, suggestions=result.suggestions)
        return time_plan(est, hardware, tokens=self.tokens, steps=self.steps,
                         available_gpus=self.box.size * self.machines if self.box.size
                         else self.config.num_gpus)

    # -- saving it -----------------------------------------------------------------------
    def to_profile(self, name: str) -> Profile:
        """The profile for this plan: launch settings from the opened profile, the plan's own
        fields, and the hardware it was made for."""
        cfg = self.config
        base = self.base or Profile(name=name)
        fsdp = base.fsdp if base.strategy == "fsdp" else FsdpOptions()
        if cfg.strategy != "fsdp":
            fsdp = FsdpOptions()  # FSDP options on a DDP profile are refused when saved
        else:
            # FSDP2 has no such sharding: saved as version 1
            version = 1 if sharding_of(cfg.sharding).fsdp1_only else fsdp.version
            fsdp = dataclasses.replace(fsdp, sharding_strategy=cfg.sharding, version=version,
                                       offload_params=cfg.offload_params,
                                       activation_checkpointing=cfg.activation_checkpointing,
                                       forward_prefetch=fsdp.forward_prefetch and version == 1)
        precision = mixed_precision_for(cfg.precision)
        if base.mixed_precision == "fp8" and cfg.precision == "bf16":
            precision = "fp8"  # estimated as bf16; the profile keeps fp8
        used = self.used_gpus()
        gpu_ids = list(self.gpu_ids) if self.gpu_ids is not None else None
        if cfg.strategy == "single":
            num_processes = None
        elif self.device == "cpu" or gpu_ids is None:
            num_processes = self.gpus_per_machine  # the count is part of the plan: kept
        else:
            num_processes = None  # one rank per listed GPU
        model = stored_model(self.model)
        estimate = base.estimate
        if model:  # every estimate input the config has under the same name (loop, …)
            same = {f.name for f in dataclasses.fields(EstimateInputs)} & \
                {f.name for f in dataclasses.fields(TrainConfig)}
            values = {name: getattr(cfg, name) for name in same}
            values["activation_checkpointing"] = (cfg.activation_checkpointing
                                                  and cfg.strategy != "fsdp")  # FSDP's own
            if "tokens" in {f.name for f in dataclasses.fields(EstimateInputs)}:
                values.update(tokens=self.tokens, steps=self.steps)
            if cfg.method != "full":  # the adapters as PEFT's LoraConfig names them
                old = (base.estimate.lora if base.estimate is not None else None) or LoraOptions()
                values["lora"] = dataclasses.replace(old, rank=cfg.lora_rank,
                                                     targets=cfg.lora_targets,
                                                     dropout=cfg.lora_dropout)
            else:
                values["lora"] = None
            old_q = base.estimate.quantization if base.estimate is not None else None
            if cfg.method == "qlora" and (old_q is not None
                                          or cfg.double_quant != QuantizationOptions().double_quant):
                values["quantization"] = dataclasses.replace(old_q or QuantizationOptions(),
                                                             double_quant=cfg.double_quant)
            elif cfg.method != "qlora":
                values["quantization"] = None
            # what the plan has no field for (the training length, …) stays as it was
            estimate = (dataclasses.replace(base.estimate, model=model, **values)
                        if base.estimate is not None else EstimateInputs(model=model, **values))
        hardware = record_of(self.box, used) if self.device == "cuda" else None
        machines = dict(num_machines=self.machines,
                        machine_rank=min(base.machine_rank, self.machines - 1))
        slurm = None
        if self.scheduler == "slurm":  # Slurm chooses the nodes: their count is slurm.nodes
            slurm = dataclasses.replace(base.slurm or SlurmOptions(), nodes=self.machines)
            if self.partition:
                slurm = dataclasses.replace(slurm, partition=self.partition)
            machines = dict(num_machines=1, machine_rank=0, main_address=None)
            gpu_ids, num_processes = None, self.gpus_per_machine
        return dataclasses.replace(
            base, name=name, strategy=cfg.strategy, fsdp=fsdp, mixed_precision=precision,
            device=self.device, gpu_ids=gpu_ids, num_processes=num_processes,
            estimate=estimate, hardware=hardware or base.hardware,
            scheduler=self.scheduler, slurm=slurm, **machines)


def _matches(record: PlannedHardware, box: Box) -> bool:
    """This box is the hardware the profile was planned for (enough GPUs of that memory)."""
    same = [g for g in box.gpus if g.memory_total == record.gpu_memory]
    return box.here and len(same) >= record.gpus_per_machine
