"""``trainwiz config``: the plain question-and-answer wizard (questionary) that saves a profile.

Fewer questions than ``accelerate config``: the GPUs found (or simulated) answer most of them,
and the memory estimate is shown as soon as the model, the strategy and the batch are known.
"""

from __future__ import annotations

import argparse
import re

from trainwiz.cli import simulate_spec
from trainwiz.errors import TrainwizError, UsageError
from trainwiz.estimator.adapters import resolve_targets
from trainwiz.estimator.catalog import catalog_names
from trainwiz.estimator.types import FSDP_SHARDINGS, LOOP_TEXT, verdict_of
from trainwiz.hardware import detect
from trainwiz.launchers.checks import cpu_ranks_need, host_memory
from trainwiz.plan import Plan, box_from_gpus, default_seq_len, resolve_model
from trainwiz.profiles import (
    Profile,
    ProfileExistsError,
    find_profile,
    save_profile,
    validate_profile,
)
from trainwiz.profiles.schema import (
    HOST_HELP,
    HOST_PATTERN,
    MAX_BATCH,
    MAX_LORA_RANK,
    MAX_MACHINES,
    MAX_PROCESSES,
    MAX_SEQ_LEN,
)
from trainwiz.profiles.store import check_name
from trainwiz.units import format_bytes


# --------------------------------------------------------------------------- estimate line

def format_estimate(result, cpu_ranks: int | None = None) -> str:
    """One line about a ``PlanEstimate``: per-GPU memory against the GPU with the least room;
    with ``cpu_ranks`` (a CPU plan) the ranks' host memory against this machine's RAM, as
    preflight compares them."""
    est = result.estimate
    if cpu_ranks is not None:
        per_rank = est.per_gpu.peak_allocated
        need, ram = cpu_ranks_need(per_rank, cpu_ranks), host_memory()
        line = (f"Host memory: {cpu_ranks} CPU rank{'s' if cpu_ranks != 1 else ''} × "
                f"{format_bytes(per_rank)} = {format_bytes(need)}")
        if not ram:
            return line + " (RAM here: unknown)"
        return line + f" of {format_bytes(ram)} RAM — {'fits' if need <= ram else 'does not fit'}"
    n = est.config.num_gpus
    line = f"Memory per GPU: {format_bytes(est.per_gpu.total)}"
    gpu = result.decisive
    if gpu is not None:
        line += f" of {format_bytes(gpu.usable)}"
        if len({(f.gpu.name, f.gpu.usable) for f in result.gpus}) > 1:
            line += f" (GPU {gpu.index}, {gpu.name})"
        line += f" — {result.verdict}"
    else:
        line += (f" on {n} GPU{'s' if n != 1 else ''} (no GPU here to compare with; "
                 "--simulate SPEC plans for a box)")
    if result.fits is False and result.suggestions:
        s = result.suggestions[0]
        line += f"; try {s.note} ({format_bytes(s.total)})"
    return line


def plan_line(profile, detection) -> list[str]:
    """What `profiles show` prints about a profile's plan: the estimate line and, when this
    box is not the hardware it was planned for, one line that says so."""
    here = box_from_gpus(detection.gpus, simulated=detection.source == "simulated")
    plan = Plan.from_profile(profile, here)
    if not plan.model:
        return []
    cpu = plan.gpus_per_machine if plan.device == "cpu" else None
    lines = [format_estimate(plan.estimate(resolve_model(plan.model)), cpu),
             f"loop: {LOOP_TEXT[plan.config.loop]}"]
    differs = plan.differs(here)
    if differs:
        lines.append(differs)
    return lines


# --------------------------------------------------------------------------- the wizard

def _needs_terminal() -> None:
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("`trainwiz config` asks questions and needs a terminal; to make a "
                         "profile without one, write the YAML by hand or use `trainwiz profiles "
                         "import FILE --name NAME`")


def _detect(args):
    return detect(simulate_spec(args))  # a bad --simulate spec is the error it is (exit 2)


class _Abort(Exception):
    pass


def _select(message: str, choices, default):
    """A select with one-key shortcuts (shown beside each choice); Enter takes the default."""
    import questionary

    used = {c.shortcut_key for c in choices if c.shortcut_key}
    keys = iter(k for k in "123456789" if k not in used)
    for c in choices:
        if not c.shortcut_key:
            c.shortcut_key = next(keys)
    start = next((c for c in choices if c.value == default), choices[0])
    return questionary.select(message, choices=choices, default=start, use_shortcuts=True,
                              use_jk_keys=False)


def _ask(question):
    answer = question.ask()
    if answer is None:  # Ctrl-C / Ctrl-D inside questionary
        raise _Abort
    return answer


def run(args: argparse.Namespace) -> int:
    _needs_terminal()
    try:
        return _wizard(args)
    except _Abort:
        print("Cancelled; nothing saved.")
        return 130


def _wizard(args: argparse.Namespace) -> int:
    import dataclasses

    import questionary
    from questionary import Choice
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)

    def show(text: str, style: str = "") -> None:
        console.print(Text(text, style=style))  # model names and paths are text, not markup

    det = _detect(args)
    gpus = list(det.gpus)
    box = box_from_gpus(gpus, simulated=det.source == "simulated")
    if gpus:
        show(f"Found {len(gpus)} GPU(s): {box.describe()}")
    else:
        show(det.message or "No GPU found: the profile will run CPU ranks (gloo).")
    plan = Plan.for_box(box)
    if not gpus:
        plan = dataclasses.replace(plan, device="cpu").with_changes({"precision": "fp32"})

    # 1. model -----------------------------------------------------------------------------
    def check_model(text: str):
        text = text.strip()
        if not text:
            return True
        try:
            resolve_model(text)
        except TrainwizError as exc:  # shown under the prompt
            return str(exc).splitlines()[0][:200]
        return True

    model = _ask(questionary.autocomplete(
        "Model (catalog name, HF id or folder, config.json or params:N; empty to skip):",
        choices=catalog_names(), validate=check_model, default="")).strip()
    plan = plan.with_model(model)
    spec = resolve_model(model) if model else None

    # 2. where it runs -------------------------------------------------------------------------
    if len(gpus) > 1:
        picked = _ask(questionary.checkbox(
            "GPUs to use:", choices=[Choice(f"{g.index}: {g.name}", value=g.index, checked=True)
                                     for g in gpus],
            validate=lambda sel: True if sel else "pick at least one GPU"))
        if len(picked) != len(gpus):
            plan = plan.with_changes({"gpu_ids": sorted(picked)})
    if not gpus:
        ranks = int(_ask(questionary.text(
            "How many CPU ranks?", default="2", validate=_whole(1, MAX_PROCESSES))))
        plan = plan.with_changes({"strategy": "ddp" if ranks > 1 else "single",
                                  "gpus_per_machine": ranks})

    # 3. precision, batch, strategy ------------------------------------------------------------
    def show_estimate():
        if spec is None:
            return None
        if plan.device == "cpu":  # GPU suggestions do not apply to CPU ranks
            line = format_estimate(plan.estimate(spec, suggestions=False), plan.gpus_per_machine)
            show(line, verdict_of("does not fit" if line.endswith("does not fit")
                                  else "fits").style)
            return None
        result = plan.estimate(spec)
        # the suggestions in the order `trainwiz estimate` and the wizard list them: those
        # that fit on this box fastest first, then more GPUs or another method (time_plan)
        _, timed = plan.time(result)
        result = dataclasses.replace(result, suggestions=tuple(t.suggestion for t in timed))
        show(format_estimate(result), verdict_of(result.verdict).style)
        return result

    bf16 = all(g.supports_bf16 is not False for g in gpus)
    precisions = [Choice("bf16", value="bf16", shortcut_key="b"),
                  Choice("fp16", value="fp16", shortcut_key="f"),
                  Choice("no (fp32)", value="fp32", shortcut_key="n"),
                  Choice("fp8 (needs Transformer Engine, torchao or MS-AMP)", value="fp8",
                         shortcut_key="8"),
                  Choice("bf16-pure (not mixed: the model loaded in bf16 and trained as is; "
                         "weights, gradients, optimizer state in bf16)", value="bf16-pure",
                         shortcut_key="p")]
    if plan.device == "cpu":
        precisions = [precisions[2], precisions[0], precisions[4]]
    elif not bf16:  # no bf16 on these GPUs (V100, T4): no pure bf16 either
        precisions = precisions[:4]
    default = ("bf16" if bf16 else "fp16") if plan.device == "cuda" else "fp32"
    precision = _ask(_select("Mixed precision:", precisions, default))
    if precision == "fp8":  # estimated as bf16; the profile keeps fp8
        plan = dataclasses.replace(plan, base=Profile(name="draft", mixed_precision="fp8"))
        precision = "bf16"
    plan = plan.with_changes({"precision": precision})

    unit = "CPU rank" if plan.device == "cpu" else "GPU"  # what a rank of this plan runs on
    if spec is not None:
        seq_default = default_seq_len(spec)  # the CLI's and the wizard's start too
        batch = int(_ask(questionary.text(
            f"Micro-batch size per {unit}:", default="1", validate=_whole(1, MAX_BATCH))))
        seq_len = int(_ask(questionary.text(
            "Sequence length:", default=str(seq_default), validate=_whole(1, MAX_SEQ_LEN))))
        plan = plan.with_changes({"batch_size": batch, "seq_len": seq_len})
        loop = _ask(_select("Training loop:", [
            Choice("custom  — keeps the model outputs through backward (accelerate's examples, "
                   "most hand-written loops)", value="custom", shortcut_key="c"),
            Choice("trainer — drops them before backward (HF Trainer, TRL)", value="trainer",
                   shortcut_key="t")], plan.config.loop))
        plan = plan.with_changes({"loop": loop})
    if spec is not None and spec.has_architecture:
        method = _ask(_select("Fine-tuning method:", [
            Choice("full  — every weight trains", value="full", shortcut_key="u"),
            Choice("lora  — PEFT LoRA adapters on a frozen model", value="lora", shortcut_key="l"),
            Choice("qlora — LoRA on a 4-bit (NF4) frozen model, bf16 compute", value="qlora",
                   shortcut_key="q")], "full"))
        changes: dict = {"method": method}
        if method != "full":
            changes["lora_rank"] = int(_ask(questionary.text(
                "LoRA rank:", default=str(plan.config.lora_rank),
                validate=_whole(1, MAX_LORA_RANK))))
            changes["lora_targets"] = _ask(questionary.text(
                "LoRA target modules (all-linear, or names such as q_proj,v_proj):",
                default=plan.config.lora_targets,
                validate=lambda t: _targets_ok(spec, t))).strip()
        if method == "qlora" and plan.config.precision not in ("bf16", "fp16"):
            changes["precision"] = "bf16"
            show("QLoRA computes in bf16 (bnb_4bit_compute_dtype): mixed precision set to bf16.")
        if method == "qlora":
            # prepare_model_for_kbit_training turns gradient checkpointing on
            changes["activation_checkpointing"] = True
        plan = plan.with_changes(changes)

    # The plan starts at DDP (plan.default_strategy); as a question's default, Enter takes
    # the strategy that fits: DDP when a full copy fits, FSDP otherwise
    several = plan.gpus_per_machine > 1
    default_strategy = plan.config.strategy
    if spec is not None and several:
        ddp = plan.with_changes({"strategy": "ddp"}).estimate(spec, suggestions=False)
        if ddp.fits is False:
            default_strategy = "fsdp"
    choices = [Choice(f"ddp    — a full copy of the model on every {unit} (fastest when it fits)",
                      value="ddp", shortcut_key="d"),
               Choice("fsdp   — shard parameters, gradients and optimizer state across "
                      f"{unit}s",
                      value="fsdp", shortcut_key="f"),
               Choice("single — one process", value="single", shortcut_key="s")]
    if not several:
        choices = [choices[2], choices[1]]
    strategy = _ask(_select("Strategy:", choices, default_strategy))
    if strategy != plan.config.strategy:
        per = plan.gpus_per_machine
        plan = plan.with_changes({"strategy": strategy})
        if strategy != "single":
            plan = plan.with_changes({"gpus_per_machine": per})
    result = show_estimate()

    # 4. FSDP options, only what matters -----------------------------------------------------
    if strategy == "fsdp":
        # one node here: HYBRID_SHARD (shards within each of several nodes) is not offered
        shard_choices = [Choice(f"{s.name:<13} — {s.text}", value=s.name,
                                shortcut_key=s.name[0].lower())
                         for s in FSDP_SHARDINGS.values()
                         if not s.within_node and plan.config.num_gpus >= s.min_gpus]
        plan = plan.with_changes({"sharding": _ask(_select("FSDP sharding:", shard_choices,
                                                           "FULL_SHARD"))})
        result = show_estimate()
    # When it does not fit, offer the estimator's suggestions: each one applies to the plan
    # (more GPUs than a machine has means more machines; a subset of GPUs means GPU ids).
    while result is not None and result.fits is False and result.suggestions:
        options = [Choice(f"{_short_note(s.note)}: {format_bytes(s.total)} per GPU"
                          + (" (slower)" if s.slower else ""), value=s)
                   for s in result.suggestions]
        options.append(Choice("keep these settings", value="keep", shortcut_key="k"))
        pick = _ask(_select("It does not fit. Change:", options, options[0].value))
        if pick == "keep":
            break
        plan = plan.with_changes(dict(pick.change))
        result = show_estimate()

    # 5. machines ------------------------------------------------------------------------------
    if plan.config.strategy != "single" and _ask(questionary.confirm(
            "Will this run span several machines?", default=plan.machines > 1)):
        machines = int(_ask(questionary.text(
            "How many machines?", default=str(max(plan.machines, 2)),
            validate=_whole(2, MAX_MACHINES))))
        plan = plan.with_changes({"machines": machines})
        address = _ask(questionary.text(
            "Address of machine 0 (host name or IP; empty: give it before launching):",
            validate=lambda t: not t.strip() or bool(re.fullmatch(HOST_PATTERN, t.strip()))
            or HOST_HELP)).strip()
        port = _ask(questionary.text(
            "Port on machine 0 (empty: chosen at launch):",
            validate=lambda t: not t.strip() or (t.strip().isdigit()
                                                 and 0 < int(t) < 65536) or "1 to 65535"))
        base = plan.base or Profile(name="draft")
        plan = dataclasses.replace(plan, base=dataclasses.replace(
            base, main_address=address or None,
            main_port=int(port) if port.strip() else None))
    elif plan.machines > 1:
        plan = plan.with_changes({"machines": 1})

    # 6. name and save --------------------------------------------------------------------------
    scope = "project" if args.project else "user"
    world = plan.config.num_gpus
    suggested = plan.config.strategy + (f"-{world}gpu" if plan.device == "cuda"
                                        else f"-{world}cpu")
    name = args.name
    while True:
        if not name:
            # not prefilled: what is typed is the whole name; Enter alone takes the suggestion
            typed = _ask(questionary.text(
                "Profile name:", instruction=f"(Enter for {suggested})",
                validate=lambda t: not t.strip() or _name_ok(t, check_name))).strip()
            name = typed or suggested
        check_name(name)
        profile = validate_profile(plan.to_profile(name))
        force = False
        existing = find_profile(name)
        if existing is not None and (existing[1] == scope):
            show(f"{existing[0]} already exists.")
            force = _ask(questionary.confirm(f"Replace profile '{name}'?", default=False))
            if not force:
                name = None
                continue
        try:
            path = save_profile(profile, scope=scope, force=force)
        except ProfileExistsError:
            name = None
            continue
        break
    show(f"Saved profile {name} to {path}")
    if plan.machines > 1 and not profile.main_address:
        show(f"Before launching on {plan.machines} machines, set main_address (machine 0's "
             f"address) in {path}.")
    show(f"Launch it with: trainwiz launch --profile {name} train.py")
    return 0


def _targets_ok(spec, text: str) -> bool | str:
    """The LoRA targets question: names the model's linear layers when one matches nothing."""
    try:
        resolve_targets(spec, text)
    except UsageError as exc:
        return str(exc).removeprefix("--lora-targets: ")
    return True


def _whole(lo: int, hi: int):
    """A prompt's check for a whole number from ``lo`` to ``hi`` (the profile's own bounds):
    anything else is refused with the range, never changed to fit."""
    def check(text: str) -> bool | str:
        t = text.strip()
        return (t.isdigit() and lo <= int(t) <= hi) or f"a whole number from {lo:,} to {hi:,}"
    return check


def _short_note(note: str) -> str:
    """A suggestion as a menu line says what it changes: 'change of method: QLoRA r16
    all-linear (…)' reads 'method → QLoRA r16 all-linear'; a combined change keeps each part;
    what it saves is left out (the size follows)."""
    note = re.sub(r": saves [^:]*$", "", note)
    m = re.match(r"change of (\w+): (.+)", note)
    if m:
        return f"{m.group(1)} → {m.group(2).split(' (')[0]}"
    return note


def _name_ok(text: str, check_name) -> bool | str:
    try:
        check_name(text.strip())
    except TrainwizError as exc:
        return str(exc)
    return True
