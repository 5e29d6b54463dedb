"""Every command's arguments: the argparse tree of ``trainwiz`` and which handler runs each command.

Imports only argparse and cheap constants, never a handler module, so ``trainwiz --help`` and
``trainwiz COMMAND --help`` answer without loading what the commands use. Each (sub)parser names
its handler as ``"module:function"`` in ``handler``; :func:`trainwiz.cli.main` imports that one
module when the command runs.
"""

from __future__ import annotations

import argparse
import os

from trainwiz import __version__
from trainwiz.estimator.types import (
    ATTENTIONS,
    LOOPS,
    METHODS,
    OPTIMIZERS,
    PRECISIONS,
    SHARDINGS,
    STRATEGIES,
)

SHOWN = 50  # `trainwiz runs` lists the newest this many (--all for every run)


def add_simulate_option(parser: argparse.ArgumentParser) -> None:
    """``--simulate SPEC`` on every command; ``TRAINWIZ_SIMULATE`` is its default."""
    parser.add_argument(
        "--simulate",
        metavar="SPEC",
        default=argparse.SUPPRESS,
        help="plan against a simulated GPU box: a preset such as 8xH100-80GB or 2x4090, "
        "or a YAML file (default: $TRAINWIZ_SIMULATE)",
    )


def simulate_spec(args: argparse.Namespace) -> str | None:
    """The simulation spec in force: ``--simulate`` wins over ``TRAINWIZ_SIMULATE``."""
    spec = getattr(args, "simulate", None)
    if spec is None:
        spec = os.environ.get("TRAINWIZ_SIMULATE") or None
    return spec


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line: what was wrong and where the help is (every
    subcommand's parser is one of these too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trainwiz",
        description="Plan, fit, launch and watch DDP/FSDP training runs. "
        "With no command, opens the full-screen app.",
    )
    parser.add_argument("--version", action="version", version=f"trainwiz {__version__}")
    add_simulate_option(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:  # in the order --help lists them
        add(subparsers)
    return parser


# --------------------------------------------------------------------------- estimate

def _count(text: str) -> int:
    try:
        value = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        suffix = text[-1:].upper()
        mult = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(suffix)
        try:
            value = float(text[:-1]) * mult if mult else None
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"cannot read {text!r} as a parameter count (e.g. 7e9, 8B, 124439808)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the parameter count must be positive, got {text!r}")
    return int(value)


def _whole(text: str) -> int:
    """A count option's value: a whole number of at least 1 (argparse names the option)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _add_estimate(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate",
        help="estimate per-GPU memory of a training config",
        description="Estimate the per-GPU memory of one training step (weights, gradients, "
        "optimizer state, activations, temporaries, CUDA overhead), say whether it fits and what "
        "change would make it fit. Torch is not needed.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="catalog name (llama-3-8b, bert-base-cased, ...; see --list), a Hugging "
                   "Face model folder or a config.json")
    p.add_argument("--params", type=_count, metavar="N", help="a bare parameter count instead of MODEL (e.g. 7e9)")
    p.add_argument("--list", action="store_true", help="list the catalog models and exit")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="default: single on one GPU, ddp on several (the fastest when a full "
                   "copy fits; when it does not, the suggestions price FSDP)")
    p.add_argument("--sharding", choices=SHARDINGS,
                   default="FULL_SHARD", help="FSDP sharding strategy (default FULL_SHARD)")
    p.add_argument("--num-gpus", type=_whole, default=None, metavar="N",
                   help="GPUs in the run (default: all detected or simulated GPUs, else 1)")
    p.add_argument("--num-nodes", type=_whole, default=1, metavar="N", help="machines (HYBRID_SHARD)")
    p.add_argument("--gpu-memory", metavar="SIZE",
                   help="memory per GPU, e.g. 80GiB (default: from the detected or simulated GPUs)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fp16/bf16: autocast mixed precision with fp32 master weights (default "
                   "bf16, or fp16 on GPUs without bf16 such as V100 and T4); bf16-pure: the model "
                   "loaded in bf16 and trained as is (weights, gradients, optimizer state in bf16)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    p.add_argument("--fused-optimizer", action="store_true", help="fused AdamW kernel (no foreach temporaries)")
    p.add_argument("--batch-size", type=_whole, default=1, metavar="B", help="per-GPU micro-batch (default 1)")
    p.add_argument("--seq-len", type=_whole, default=None, metavar="S", help="sequence length (default 2048, or the model's maximum when shorter)")
    p.add_argument("--grad-accum", type=_whole, default=1, metavar="N", help="gradient accumulation steps")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--offload-params", action="store_true", help="FSDP CPU offload")
    p.add_argument("--attention", choices=ATTENTIONS, default="sdpa",
                   help="sdpa: memory-efficient kernels (default); eager keeps the s×s scores "
                   "(and, with attention dropout in the config, its mask and the dropped "
                   "probabilities)")
    p.add_argument("--loop", choices=LOOPS, default="custom",
                   help="custom (default): your loop keeps the model outputs (logits) through "
                   "backward, as accelerate's examples do; trainer: they are dropped before "
                   "backward, as the HF Trainer and TRL do")
    p.add_argument("--method", choices=METHODS, default="full",
                   help="full fine-tuning (default); lora: PEFT LoRA adapters on a frozen base; "
                   "qlora: LoRA on a 4-bit NF4 base (bitsandbytes, double quantization, bf16 "
                   "compute; prepare_model_for_kbit_training turns gradient checkpointing on: "
                   "add --activation-checkpointing)")
    p.add_argument("--lora-rank", type=_whole, default=None, metavar="R",
                   help="LoRA rank r (default 16; with --method lora or qlora)")
    p.add_argument("--lora-targets", default=None, metavar="TARGETS",
                   help="PEFT target_modules: all-linear (default: every linear layer but the "
                   "output layer) or a comma list of module names such as q_proj,v_proj")
    p.add_argument("--gradient-as-bucket-view", action="store_true",
                   help="DDP: gradients live in the reducer's buckets (no second copy)")
    p.add_argument("--tokens", metavar="N", help="training length in tokens (e.g. 1e8, 2B): "
                   "prints the time to finish")
    p.add_argument("--steps", metavar="N", help="training length in optimizer steps")
    p.add_argument("--network", metavar="SPEED", help="bandwidth between machines, per machine "
                   "(e.g. 400Gbps, 3.2Tbps, 50GB/s); needed to time runs on several machines")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output (bytes)")
    out.add_argument("--table", action="store_true",
                     help="accelerate estimate-memory's per-dtype table for the same model")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.estimate:run")


# --------------------------------------------------------------------------- gpus

GPUS_EPILOG = """\
SPEC is NxPRESET (8xH100-80GB, 2x4090, 4xA100-80GB+4xL4) or a YAML file describing a mixed or
busy box, e.g.

  gpus:
    - {preset: H100-80GB, count: 4}
    - {preset: A100-80GB, memory_used: 30GiB, utilization: 95,
       processes: [{pid: 4242, memory_used: 30GiB, name: python}]}
    - {name: My card, memory_total: 48GiB, compute_capability: "8.6"}
  host: {cpu_count: 96, ram_total: 1TiB}

Presets: H100-80GB (SXM), H100-PCIE, H100-NVL, H200, B200, A100-40GB, A100-80GB (SXM),
A100-80GB-PCIE, A6000, L40S, A10G, L4, 4090, 3090, V100-16GB, V100-32GB, T4.
"""


def _add_gpus(subparsers) -> None:
    p = subparsers.add_parser(
        "gpus", help="list the GPUs (memory, utilization, temperature, power, processes)",
        description="List this box's GPUs as NVML reports them, or a simulated box's\n"
        "(planning mode). Values a GPU cannot report show as N/A (null in JSON).",
        epilog=GPUS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per GPU (sizes in bytes, null = not available)")
    p.add_argument("--watch", action="store_true",
                   help="refresh in place until Ctrl-C (with --json: one JSON list per line)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="refresh interval for --watch (default 1.0)")
    p.add_argument("--count", type=int, default=None, metavar="N",
                   help="with --watch, stop after N refreshes")
    p.add_argument("--slurm", action="store_true",
                   help="the Slurm cluster's partitions: nodes, their states, CPUs, memory, "
                   "GPUs per node and type, and how to plan for them")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.gpus:run")


# --------------------------------------------------------------------------- config

def _add_config(subparsers) -> None:
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
    p.set_defaults(handler="trainwiz.cli.config:run")


# --------------------------------------------------------------------------- profiles

def _add_profiles(subparsers) -> None:
    p = subparsers.add_parser(
        "profiles", help="list, show, copy, import and export saved training profiles",
        description="Profiles live in .trainwiz/profiles/ of the project (current directory or "
                    "its git root; these win on a name clash) and in the user config dir "
                    "($XDG_CONFIG_HOME/trainwiz/profiles). A path to a YAML file works wherever "
                    "a NAME does.")
    add_simulate_option(p)
    sub = p.add_subparsers(dest="profiles_command", metavar="ACTION")

    ls = sub.add_parser("list", help="every profile, damaged ones included")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    add_simulate_option(ls)
    ls.set_defaults(handler="trainwiz.cli.profiles:cmd_list")

    show = sub.add_parser("show", help="a profile's settings and where it lives")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="the profile as JSON")
    add_simulate_option(show)
    show.set_defaults(handler="trainwiz.cli.profiles_show:cmd_show")

    rm = sub.add_parser("rm", help="delete a profile")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_simulate_option(rm)
    rm.set_defaults(handler="trainwiz.cli.profiles:cmd_rm")

    cp = sub.add_parser("cp", help="copy a profile under a new name (same store)")
    cp.add_argument("name", metavar="NAME")
    cp.add_argument("new", metavar="NEW")
    cp.add_argument("--force", action="store_true", help="overwrite NEW if it exists")
    add_simulate_option(cp)
    cp.set_defaults(handler="trainwiz.cli.profiles:cmd_cp")

    imp = sub.add_parser("import", help="save a trainwiz profile or an accelerate config file "
                                        "as a profile")
    imp.add_argument("file", metavar="FILE", nargs="?",
                     help="YAML file: an accelerate config or a trainwiz profile")
    imp.add_argument("--name", required=True, metavar="NAME", help="name of the new profile")
    imp.add_argument("--from-accelerate-default", action="store_true",
                     help="read accelerate's default config "
                          "($HF_HOME/accelerate/default_config.yaml)")
    imp.add_argument("--project", action="store_true",
                     help="save in the project's .trainwiz/profiles instead of the user store")
    imp.add_argument("--force", action="store_true", help="overwrite an existing profile")
    add_simulate_option(imp)
    imp.set_defaults(handler="trainwiz.cli.profiles:cmd_import")

    exp = sub.add_parser("export", help="write a profile as a trainwiz or accelerate config "
                         "file, or (scheduler: slurm) as the sbatch script trainwiz submits")
    exp.add_argument("name", metavar="NAME")
    exp.add_argument("--format", choices=("trainwiz", "accelerate", "sbatch"), default="trainwiz")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    exp.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_simulate_option(exp)
    exp.set_defaults(handler="trainwiz.cli.profiles_export:cmd_export")

    p.set_defaults(handler="trainwiz.cli.profiles:cmd_list", json=False)


# --------------------------------------------------------------------------- launch

def _add_launch(subparsers) -> None:
    p = subparsers.add_parser(
        "launch", help="launch a training run from a profile (torchrun or accelerate)",
        description="Check the profile against this machine, then start the run under a "
        "detached supervisor that survives the terminal closing. Without --detach, watch it "
        "live; Ctrl-C asks whether to stop it or leave it running.",
    )
    p.add_argument("--profile", "-p", required=True, metavar="NAME|FILE",
                   help="a saved profile name or a profile YAML file")
    p.add_argument("--detach", "-d", action="store_true",
                   help="return as soon as the run has started")
    p.add_argument("--yes", "-y", action="store_true",
                   help="launch even if the estimate does not fit the GPUs' free memory")
    p.add_argument("--print-commands", action="store_true",
                   help="print the exact command for every machine and launch nothing")
    p.add_argument("--plain", action="store_true", help="plain-line live view even on a terminal")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module, like python -m")
    p.add_argument("script", nargs="?", metavar="SCRIPT", help="training script (default: the profile's)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS",
                   help="arguments for the training script")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.launch:run")


# --------------------------------------------------------------------------- runs

def _add_runs(subparsers) -> None:
    p = subparsers.add_parser("runs", help="list runs, newest first; `runs show RUN` for one, "
                              "`runs prune` deletes old ones")
    p.add_argument("--json", action="store_true", help="machine-readable list (every run)")
    p.add_argument("--all", "-a", action="store_true",
                   help=f"every run (default: the newest {SHOWN}, and how many are hidden)")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.runs:cmd_runs")
    sub = p.add_subparsers(dest="runs_command", metavar="ACTION")
    q = sub.add_parser(
        "prune", help="delete finished runs by age or count (never a running one); a DAMAGED run "
        "folder (no usable status.json) too, once no process of yours carries its id and it has "
        "not changed for a minute (its age: its last change); only your own run folders",
        description="Delete finished runs that ended more than AGE ago and/or all but the newest "
        "N. A running run is never deleted. A DAMAGED run folder (status.json missing or "
        "unusable) is deleted too once it is over: no process of yours carries its run id "
        "(ranks, launcher, supervisor), it is not a Slurm job, and it has not changed for a "
        "minute; its age is its last change. Folders of another user are never touched.")
    q.add_argument("--older-than", metavar="AGE",
                   help="runs that ended more than AGE ago (30m, 12h, 7d, 2w)")
    q.add_argument("--keep", type=int, metavar="N", help="keep the newest N runs")
    q.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    add_simulate_option(q)
    q.set_defaults(handler="trainwiz.cli.runs:cmd_prune")
    q = sub.add_parser("show", help="one run: progress, and estimated against measured memory")
    q.add_argument("run", nargs="?", default="last", metavar="RUN",
                   help="run id, unique id prefix, or 'last' (default)")
    q.add_argument("--json", action="store_true", help="the run's record with progress and memory")
    add_simulate_option(q)
    q.set_defaults(handler="trainwiz.cli.runs_show:cmd_show")

    p = subparsers.add_parser("attach", help="watch a run live again")
    p.add_argument("run", nargs="?", default="last", metavar="RUN",
                   help="run id, unique id prefix, or 'last' (default)")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.runs_control:cmd_attach")

    p = subparsers.add_parser("stop", help="stop a run: SIGTERM, a grace period, then SIGKILL")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or 'last'")
    p.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between SIGTERM and SIGKILL (default 10)")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.runs_control:cmd_stop")

    p = subparsers.add_parser("logs", help="print or follow a rank's log")
    p.add_argument("run", nargs="?", default="last", metavar="RUN",
                   help="run id, unique id prefix, or 'last' (default)")
    p.add_argument("--rank", type=int, default=0, help="global rank (default 0)")
    p.add_argument("--launcher", action="store_true",
                   help="the launcher's and supervisor's logs instead of a rank's")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as the log grows")
    p.add_argument("-n", "--lines", type=int, default=None, help="only the last N lines")
    add_simulate_option(p)
    p.set_defaults(handler="trainwiz.cli.logs:cmd_logs")


COMMANDS = (_add_estimate, _add_gpus, _add_config, _add_profiles, _add_launch, _add_runs)
