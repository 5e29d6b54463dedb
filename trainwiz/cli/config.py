"""``trainwiz config``: the plain question-and-answer wizard (questionary) that saves a profile.

Fewer questions than ``accelerate config``: the GPUs found (or simulated) answer most of them,
and the memory estimate is shown as soon as the model, the strategy and the batch are known.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from trainwiz.cli import add_simulate_option

    p = subparsers.add_parser(
        "config", help="answer a few questions and save a training profile",
        description="Asks for the model, GPUs, strategy, precision and batch, shows the memory "
                    "estimate per GPU, and saves a profile for `trainwiz launch --profile NAME`.")
    p.add_argument("--plain", action="store_true",
                   help="plain questions in the terminal (the default for now)")
    p.add_argument("--name", metavar="NAME", help="save the profile under this name")
    p.add_argument("--project", action="store_true",
                   help="save in the project's .trainwiz/profiles (current directory or its git "
                        "root) instead of the user store")
    add_simulate_option(p)
    p.set_defaults(func=_config)


# --------------------------------------------------------------------------- estimate line

GIB = 1 << 30


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f} GiB"


def resolve_model_spec(model: str):
    """ModelSpec for a profile's model string (``params:N`` is a bare count)."""
    from trainwiz.profiles.estimate_io import model_argument

    name, params = model_argument(model)
    if params is not None:
        from trainwiz.estimator import model_from_params

        return model_from_params(params)
    from trainwiz.estimator import resolve_model

    return resolve_model(name)


def run_estimate(model, cfg, gpu_memory: int | None):
    """The estimator's answer, or None when it cannot give one (still being built, bad input)."""
    from trainwiz.errors import TrainwizError

    try:
        from trainwiz.estimator import estimate

        spec = model if not isinstance(model, str) else resolve_model_spec(model)
    except (ImportError, AttributeError, TrainwizError):
        return None
    try:
        return estimate(spec, cfg, gpu_memory=gpu_memory)
    except (ImportError, AttributeError):
        try:
            return estimate(spec, cfg, gpu_memory=gpu_memory, suggestions=False)
        except Exception:  # noqa: BLE001 - the line is a convenience, never a crash
            return None
    except Exception:  # noqa: BLE001
        return None


def format_estimate(est) -> str:
    per = est.per_gpu.total
    n = est.config.num_gpus
    line = f"Memory per GPU: {_gib(per)}"
    if est.gpu_memory:
        line += f" of {_gib(est.gpu_memory)} — {est.verdict}"
    else:
        line += (f" on {n} GPU{'s' if n != 1 else ''} (no GPU here to compare with; "
                 "--simulate SPEC plans for a box)")
    if est.fits is False and est.suggestions:
        s = est.suggestions[0]
        line += f"; try {s.note} ({_gib(s.total)})"
    return line


def estimate_line(model, cfg, gpu_memory: int | None) -> str | None:
    est = run_estimate(model, cfg, gpu_memory)
    return format_estimate(est) if est is not None else None


# --------------------------------------------------------------------------- the wizard

def _needs_terminal() -> None:
    import sys

    from trainwiz.errors import UsageError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("`trainwiz config` asks questions and needs a terminal; to make a "
                         "profile without one, write the YAML by hand or use `trainwiz profiles "
                         "import FILE --name NAME`")


def _detect(args):
    from trainwiz.cli import simulate_spec

    try:
        from trainwiz.hardware import detect
    except ImportError:
        return [], "hardware detection is not available"
    try:
        det = detect(simulate_spec(args))
    except Exception as exc:  # noqa: BLE001 - a bad --simulate spec is reported as the error it is
        from trainwiz.errors import TrainwizError

        if isinstance(exc, TrainwizError):
            raise
        return [], f"could not probe the GPUs: {exc}"
    return list(det.gpus), det.message


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


def _config(args: argparse.Namespace) -> int:
    _needs_terminal()
    try:
        return _wizard(args)
    except _Abort:
        print("Cancelled; nothing saved.")
        return 130


def _wizard(args: argparse.Namespace) -> int:
    import questionary
    from questionary import Choice
    from rich.console import Console

    from trainwiz.profiles import (
        EstimateInputs,
        FsdpOptions,
        LoraOptions,
        Profile,
        ProfileExistsError,
        estimate_request,
        find_profile,
        save_profile,
        validate_profile,
    )
    from trainwiz.profiles.store import check_name

    console = Console(highlight=False)
    gpus, message = _detect(args)
    if gpus:
        names = sorted({g.name for g in gpus})
        mem = min((g.memory_total for g in gpus if g.memory_total), default=None)
        console.print(f"Found {len(gpus)} GPU(s): {', '.join(names)}"
                      + (f", {_gib(mem)} each" if mem else ""))
    else:
        mem = None
        console.print(message or "No GPU found: the profile will run CPU ranks (gloo).")

    # 1. model -----------------------------------------------------------------------------
    try:
        from trainwiz.estimator.models import catalog_names

        known = catalog_names()
    except Exception:  # noqa: BLE001
        known = []

    def check_model(text: str):
        text = text.strip()
        if not text:
            return True
        try:
            resolve_model_spec(text)
        except ImportError:
            return True
        except Exception as exc:  # noqa: BLE001 - shown under the prompt
            return str(exc).splitlines()[0][:200]
        return True

    model = _ask(questionary.autocomplete(
        "Model (catalog name, HF folder, config.json or params:N; empty to skip):",
        choices=known, validate=check_model, default="")).strip()

    # 2. where it runs -------------------------------------------------------------------------
    device = "cuda" if gpus else "cpu"
    gpu_ids = None
    if gpus and len(gpus) > 1:
        picked = _ask(questionary.checkbox(
            "GPUs to use:", choices=[Choice(f"{g.index}: {g.name}", value=g.index, checked=True)
                                     for g in gpus],
            validate=lambda sel: True if sel else "pick at least one GPU"))
        if len(picked) != len(gpus):
            gpu_ids = sorted(picked)
    n_local = (len(gpu_ids) if gpu_ids is not None else len(gpus)) if gpus else None
    num_processes = None
    if not gpus:
        n_local = int(_ask(questionary.text(
            "How many CPU ranks?", default="2",
            validate=lambda t: t.isdigit() and int(t) >= 1 or "a whole number, 1 or more")))
        num_processes = n_local
    bf16 = all(g.supports_bf16 is not False for g in gpus) if gpus else True

    # 3. strategy, precision, batch --------------------------------------------------------------
    spec = None
    if model:
        try:
            spec = resolve_model_spec(model)
        except Exception:  # noqa: BLE001
            spec = None

    def request(profile):
        req = estimate_request(profile, n_local)
        return req[1] if req else None

    def lora_options():
        return LoraOptions(rank=lora_rank, targets=lora_targets) if method != "full" else None

    def draft(**kw):
        base = dict(name="draft", strategy=strategy, device=device, gpu_ids=gpu_ids,
                    num_processes=num_processes, mixed_precision=precision, fsdp=fsdp,
                    estimate=EstimateInputs(model=model or "params:1", batch_size=batch,
                                            seq_len=seq_len, optimizer=optimizer,
                                            fused_optimizer=fused, grad_accum=grad_accum,
                                            activation_checkpointing=ac, loop=loop,
                                            method=method, lora=lora_options()))
        base.update(kw)
        return Profile(**base)

    def show_estimate(profile):
        if spec is None:
            return None
        est = run_estimate(spec, request(profile), mem)
        if est is not None:
            style = {"fits": "green", "tight": "yellow", "does not fit": "red"}.get(est.verdict, "")
            text = format_estimate(est)
            console.print(f"[{style}]{text}[/]" if style else text)
        return est

    precision_default = ("bf16" if bf16 else "fp16") if device == "cuda" else "no"
    precisions = [Choice("bf16", value="bf16", shortcut_key="b"),
                  Choice("fp16", value="fp16", shortcut_key="f"),
                  Choice("no (fp32)", value="no", shortcut_key="n"),
                  Choice("fp8 (needs Transformer Engine, torchao or MS-AMP)", value="fp8",
                         shortcut_key="8"),
                  Choice("bf16-pure (not mixed: the model loaded in bf16 and trained as is; "
                         "weights, gradients, optimizer state in bf16)", value="bf16-pure",
                         shortcut_key="p")]
    if device == "cpu":
        precisions = [precisions[2], precisions[0], precisions[4]]
    elif not bf16:  # no bf16 on these GPUs (V100, T4): no pure bf16 either
        precisions = precisions[:4]
    precision = _ask(_select("Mixed precision:", precisions, precision_default))

    batch, seq_len, ac, optimizer, grad_accum = 1, 2048, False, "adamw", 1
    fused, loop = False, "custom"
    method, lora_rank, lora_targets = "full", 16, "all-linear"
    if spec is not None and getattr(spec, "max_position", None):
        seq_len = min(seq_len, spec.max_position)
    fsdp = FsdpOptions()
    strategy = "single" if (n_local or 1) == 1 else "ddp"
    if spec is not None:
        batch = int(_ask(questionary.text(
            "Micro-batch size per GPU:", default=str(batch),
            validate=lambda t: t.isdigit() and int(t) >= 1 or "a whole number, 1 or more")))
        seq_len = int(_ask(questionary.text(
            "Sequence length:", default=str(seq_len),
            validate=lambda t: t.isdigit() and int(t) >= 1 or "a whole number, 1 or more")))
        loop = _ask(_select("Training loop:", [
            Choice("custom  — keeps the model outputs through backward (accelerate's examples, "
                   "most hand-written loops)", value="custom", shortcut_key="c"),
            Choice("trainer — drops them before backward (HF Trainer, TRL)", value="trainer",
                   shortcut_key="t")], loop))
    if spec is not None and spec.has_architecture:
        method = _ask(_select("Fine-tuning method:", [
            Choice("full  — every weight trains", value="full", shortcut_key="u"),
            Choice("lora  — PEFT LoRA adapters on a frozen model", value="lora", shortcut_key="l"),
            Choice("qlora — LoRA on a 4-bit (NF4) frozen model, bf16 compute", value="qlora",
                   shortcut_key="q")], "full"))
        if method != "full":
            lora_rank = int(_ask(questionary.text(
                "LoRA rank:", default=str(lora_rank),
                validate=lambda t: t.isdigit() and int(t) >= 1 or "a whole number, 1 or more")))
            lora_targets = _ask(questionary.text(
                "LoRA target modules (all-linear, or names such as q_proj,v_proj):",
                default=lora_targets, validate=lambda t: _targets_ok(spec, t))).strip()
        if method == "qlora" and precision not in ("bf16", "fp16"):
            precision = "bf16"
            console.print("QLoRA computes in bf16 (bnb_4bit_compute_dtype): mixed precision set "
                          "to bf16.")
        if method == "qlora":
            ac = True  # prepare_model_for_kbit_training turns gradient checkpointing on

    # Suggest the strategy from the estimate: DDP when a full copy fits, FSDP otherwise.
    default_strategy = strategy
    if spec is not None and (n_local or 1) > 1:
        est = run_estimate(spec, request(draft(strategy="ddp")), mem)
        if est is not None and est.fits is False:
            default_strategy = "fsdp"
    choices = [Choice("ddp    — a full copy of the model on every GPU (fastest when it fits)",
                      value="ddp", shortcut_key="d"),
               Choice("fsdp   — shard parameters, gradients and optimizer state across GPUs",
                      value="fsdp", shortcut_key="f"),
               Choice("single — one process", value="single", shortcut_key="s")]
    if (n_local or 1) == 1:
        choices = [choices[2], choices[1]]
    strategy = _ask(_select("Strategy:", choices, default_strategy))
    world = (n_local or 1)
    if strategy == "single":
        num_processes = 1 if device == "cpu" else None
        if gpu_ids is None and gpus and len(gpus) > 1:
            gpu_ids = [gpus[0].index]
        world = 1

    est = show_estimate(draft())

    # 4. FSDP options, only what matters -----------------------------------------------------
    if strategy == "fsdp":
        shard_choices = [Choice("FULL_SHARD    — shard everything (least memory)",
                                value="FULL_SHARD", shortcut_key="f")]
        if world > 1:
            shard_choices.append(Choice("SHARD_GRAD_OP — keep parameters gathered between "
                                        "forward and backward (faster, more memory)",
                                        value="SHARD_GRAD_OP", shortcut_key="s"))
        shard_choices.append(Choice("NO_SHARD      — like DDP (FSDP version 1)", value="NO_SHARD",
                                    shortcut_key="n"))
        sharding = _ask(_select("FSDP sharding:", shard_choices, "FULL_SHARD"))
        fsdp = FsdpOptions(sharding_strategy=sharding,
                           version=1 if sharding == "NO_SHARD" else 2)
        est = show_estimate(draft())
    # When it does not fit, offer the estimator's own suggestions that a profile can hold.
    while spec is not None and est is not None and est.fits is False:
        options, tips = [], []
        for sug in est.suggestions:
            label = f"{_short_note(sug.note)} → {_gib(sug.total)}" + (" (slower)" if sug.slower
                                                                    else "")
            if _applicable(sug.change, strategy):
                options.append(Choice(label, value=sug))
            else:
                tips.append(label)
        for tip in tips[:3]:
            console.print(f"[dim]  outside the profile: {tip}[/]")
        if not options:
            break
        options.append(Choice("keep these settings", value="keep", shortcut_key="k"))
        pick = _ask(_select("It does not fit. Change:", options, options[0].value))
        if pick == "keep":
            break
        change = dict(pick.change)
        strategy = change.get("strategy", strategy)
        if "sharding" in change or strategy == "fsdp":
            sharding = change.get("sharding", fsdp.sharding_strategy)
            fsdp = FsdpOptions(**{**fsdp.__dict__, "sharding_strategy": sharding,
                                  "version": 1 if sharding in ("NO_SHARD", "HYBRID_SHARD")
                                  else fsdp.version})
        if "activation_checkpointing" in change:
            ac = bool(change["activation_checkpointing"])
            if strategy == "fsdp":
                fsdp = FsdpOptions(**{**fsdp.__dict__, "activation_checkpointing": ac})
        if "offload_params" in change:
            fsdp = FsdpOptions(**{**fsdp.__dict__, "offload_params": change["offload_params"]})
        if "precision" in change:
            precision = {"fp32": "no"}.get(change["precision"], change["precision"])
        optimizer = change.get("optimizer", optimizer)
        fused = bool(change.get("fused_optimizer", fused))
        batch = change.get("batch_size", batch)
        seq_len = change.get("seq_len", seq_len)
        grad_accum = change.get("grad_accum", grad_accum)
        loop = change.get("loop", loop)
        method = change.get("method", method)
        lora_rank = change.get("lora_rank", lora_rank)
        lora_targets = change.get("lora_targets", lora_targets)
        est = show_estimate(draft())

    # 5. machines ------------------------------------------------------------------------------
    num_machines, machine_rank, main_address, main_port = 1, 0, None, None
    if strategy != "single" and _ask(questionary.confirm("Will this run span several machines?",
                                                         default=False)):
        num_machines = int(_ask(questionary.text(
            "How many machines?", default="2",
            validate=lambda t: t.isdigit() and int(t) >= 2 or "2 or more")))
        machine_rank = int(_ask(questionary.text(
            f"This machine's rank (0 to {num_machines - 1}; 0 is the main one):", default="0",
            validate=lambda t: t.isdigit() and int(t) < num_machines
            or f"0 to {num_machines - 1}")))
        main_address = _ask(questionary.text(
            "Address of machine 0 (host name or IP):",
            validate=lambda t: bool(t.strip()) or "needed to meet the other machines")).strip()
        port = _ask(questionary.text("Port on machine 0:", default="29500",
                                     validate=lambda t: t.isdigit() and 0 < int(t) < 65536
                                     or "1 to 65535"))
        main_port = int(port)

    profile = draft(num_machines=num_machines, machine_rank=machine_rank,
                    main_address=main_address, main_port=main_port,
                    estimate=(EstimateInputs(model=model, batch_size=batch, seq_len=seq_len,
                                             optimizer=optimizer, fused_optimizer=fused,
                                             grad_accum=grad_accum, loop=loop,
                                             activation_checkpointing=ac and strategy != "fsdp",
                                             method=method, lora=lora_options())
                              if model else None))

    # 6. name and save --------------------------------------------------------------------------
    scope = "project" if args.project else "user"
    suggested = strategy + (f"-{world}gpu" if device == "cuda" else f"-{world}cpu")
    name = args.name
    while True:
        if not name:
            name = _ask(questionary.text(
                "Profile name:", default=suggested,
                validate=lambda t: _name_ok(t, check_name))).strip()
        check_name(name)
        profile.name = name
        validate_profile(profile)
        force = False
        existing = find_profile(name)
        if existing is not None and (existing[1] == scope):
            console.print(f"{existing[0]} already exists.")
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
    console.print(f"Saved profile [bold]{name}[/] to {path}")
    console.print(f"Launch it with: trainwiz launch --profile {name} train.py")
    return 0


# TrainConfig fields a profile can hold (the rest, e.g. a fused optimizer or more GPUs, are
# changes to the script or the machine, shown as tips).
_PROFILE_CHANGES = {"strategy", "sharding", "precision", "optimizer", "fused_optimizer",
                    "batch_size", "seq_len", "grad_accum", "activation_checkpointing",
                    "offload_params", "loop", "method", "lora_rank", "lora_targets"}


def _targets_ok(spec, text: str) -> bool | str:
    """The LoRA targets question: names the model's linear layers when one matches nothing."""
    from trainwiz.errors import UsageError
    from trainwiz.estimator.adapters import resolve_targets

    try:
        resolve_targets(spec, text)
    except UsageError as exc:
        return str(exc).removeprefix("--lora-targets: ")
    return True


def _applicable(change: dict, strategy: str) -> bool:
    if not change or not set(change) <= _PROFILE_CHANGES:
        return False
    if "offload_params" in change and change.get("strategy", strategy) != "fsdp":
        return False
    return True


def _short_note(note: str) -> str:
    return note.split(": ")[0]


def _name_ok(text: str, check_name) -> bool | str:
    from trainwiz.errors import TrainwizError

    try:
        check_name(text.strip())
    except TrainwizError as exc:
        return str(exc)
    return True
