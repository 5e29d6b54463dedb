"""The sbatch script for a ``scheduler: slurm`` profile. Pure: builds text, runs nothing.

The script is the one a Slurm user would write by hand: ``#SBATCH`` lines from the profile's
``slurm:`` section, one task per node (``srun --ntasks-per-node=1``), and on every node
trainwiz's supervisor around the profile's launcher (torchrun, or accelerate) joined by a c10d
rendezvous on the job's first node (the first of ``scontrol show hostnames
"$SLURM_JOB_NODELIST"``, at its ``NodeAddr`` from ``scontrol show node``), with the job id as
the rendezvous id. No host name is written into it: Slurm picks the nodes when the job starts.

Each node's supervisor keeps its own folder ``<run dir>/nodes/<node name>-<run id>/`` (status,
launcher log, rank logs under ``torchrun/``, GPU samples): the run directory must be on a
filesystem every node shares. The supervisor runs with trainwiz's own interpreter and package
(``sys.executable`` and the folder holding ``trainwiz/``: the same paths on every node, as with
a shared home or a shared software install); the ranks run with the profile's ``python:``.

Submitting is :mod:`trainwiz.launchers.slurm_submit` (sbatch); following and stopping the job
is :mod:`trainwiz.launchers.slurm_jobs` (scontrol, sacct, squeue, scancel).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace

from trainwiz.errors import TrainwizError
from trainwiz.launchers import command as C
from trainwiz.launchers.command import BOOT

SCRIPT_NAME = "job.sbatch"

# Options the node's supervisor rewrites for its own node (the shell line is the same on every
# node): where the launcher puts the rank logs, and accelerate's machine rank.
LOG_DIR_OPTIONS = ("--log-dir", "--log_dir")
MACHINE_RANK_OPTIONS = ("--machine_rank",)

# torchrun options the Slurm script sets itself (the rendezvous is the job's first node).
_TORCHRUN_RDZV = {"--node-rank": 1, "--master-addr": 1, "--master-port": 1, "--rdzv-backend": 1,
                  "--rdzv-endpoint": 1, "--rdzv-id": 1, "--standalone": 0}
_ACCELERATE_RDZV = {"--machine_rank": 1, "--main_process_ip": 1, "--main_process_port": 1,
                    "--rdzv_backend": 1}


@dataclass(frozen=True)
class _Var:
    """A word of the script the shell expands (``"$MAIN_ADDR:$RDZV_PORT"``), written verbatim."""

    text: str


def _word(token) -> str:
    return token.text if isinstance(token, _Var) else shlex.quote(str(token))


_SAFE_TAIL = re.compile(r"^[A-Za-z0-9._/+=:,@%-]*$")


def _in_run_dir(words: list, run_dir: str) -> list:
    """Paths inside the run directory written as ``"$RUN_DIR/..."`` (when the rest of the path
    needs no quoting inside double quotes)."""
    base = run_dir.rstrip("/")
    out = []
    for w in words:
        if isinstance(w, str) and (w == base or w.startswith(base + "/")) \
                and _SAFE_TAIL.match(w[len(base):]):
            out.append(_Var('"$RUN_DIR' + w[len(base):] + '"'))
        else:
            out.append(w)
    return out


def node_dir_name(node: str) -> str:
    """The folder name for a node (a Slurm node name is already a safe file name; be sure)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in node)
    return safe or "node"


def sbatch_options(profile, *, output: str, gpus_per_node: int | None) -> list[tuple[str, str]]:
    """The ``#SBATCH`` lines as (option, comment)."""
    s = profile.slurm
    name = f"trainwiz-{profile.name}"
    out = [(f"--job-name={name}", "shown by squeue"),
           (f"--nodes={profile.machines}", "machines; Slurm picks which"),
           ("--ntasks-per-node=1", "one task per node: trainwiz's supervisor, which starts "
                                   f"{profile.launcher}")]
    if s is not None and s.partition:
        out.append((f"--partition={s.partition}", ""))
    if gpus_per_node:
        out.append((f"--gpus-per-node={gpus_per_node}", "one GPU per rank"))
    if s is not None and s.time:
        out.append((f"--time={s.time}", "time limit; the job ends as TIMEOUT after it"))
    if s is not None and s.account:
        out.append((f"--account={s.account}", ""))
    if s is not None and s.qos:
        out.append((f"--qos={s.qos}", ""))
    out.append((f"--output={output}", "the batch script's own output (%j: the job id)"))
    for arg in (s.sbatch_args if s is not None else []):
        out.append((arg, "from the profile's slurm.sbatch_args"))
    return out


def _strip_options(argv: list[str], table: dict[str, int], stop: int) -> list[str]:
    """argv without the options in ``table`` (option -> how many values follow) before ``stop``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if i < stop and tok in table:
            i += 1 + table[tok]
            continue
        out.append(tok)
        i += 1
    return out


def launcher_words(profile, script: str, args: list[str], *, run_dir: str, run_id: str,
                   python: str, nproc: int, module: bool = False) -> tuple[list, dict[str, str]]:
    """The launcher's argv for every node (shell words; the rendezvous as shell variables) and
    the environment the ranks get (the plan's, as for a local launch)."""
    # One machine's command from the shared builder (environment, interpreter, log layout), then
    # its rendezvous replaced with the job's first node.
    cmd = C.build_command(profile, script, args, run_dir=run_dir, run_id=run_id, port=0,
                          node_rank=0, module=module, nproc=nproc, python=python)
    argv = list(cmd.argv)
    target = _target_index(argv, script)
    nodes = str(profile.machines)
    if profile.launcher == "accelerate":
        argv = _strip_options(argv, _ACCELERATE_RDZV, target)
        target = _target_index(argv, script)
        head, tail = argv[:target], argv[target:]
        words = head + ["--machine_rank", "0",  # each node's supervisor sets its own
                        "--main_process_ip", _Var('"$MAIN_ADDR"'),
                        "--main_process_port", _Var('"$RDZV_PORT"'),
                        "--rdzv_backend", "c10d"] + tail
        return words, dict(cmd.env)
    argv = _strip_options(argv, _TORCHRUN_RDZV, target)
    target = _target_index(argv, script)
    head, tail = argv[:target], argv[target:]
    _set(head, "--nnodes", nodes)
    words = head + ["--rdzv-backend", "c10d", "--rdzv-endpoint", _Var('"$MAIN_ADDR:$RDZV_PORT"'),
                    "--rdzv-id", _Var('"$RDZV_ID"')] + tail
    return words, dict(cmd.env)


def _target_index(argv: list[str], script: str) -> int:
    """Where the launcher's own options end: the script (or ``-m``/``--module`` before it)."""
    for i in range(len(argv) - 1, -1, -1):
        if argv[i] == script:
            if i > 0 and argv[i - 1] in ("-m", "--module"):
                return i - 1
            return i
    raise AssertionError(f"{script!r} not in {argv!r}")


def _set(argv: list[str], option: str, value: str) -> None:
    if option in argv:
        argv[argv.index(option) + 1] = value


def _comment_block(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def build_sbatch_script(profile, script: str, args: list[str] | None = None, *, run_dir: str,
                        run_id: str, python: str, nproc: int, gpus_per_node: int | None,
                        trainwiz_python: str, trainwiz_root: str, module: bool = False,
                        runs_folder: str | None = None,
                        accelerate_config: str | None = None) -> str:
    """The whole sbatch script for the profile (text, ending in a newline).

    ``runs_folder``: write a script for people who submit it themselves (``profiles export``,
    ``--print-commands``): the run directory is ``<runs_folder>/slurm-<job id>``, made when the
    job starts; ``run_dir`` and ``run_id`` are then ignored. ``accelerate_config``: the
    profile as an accelerate config (YAML text), written into the run directory by the script
    itself (accelerate launcher), so the script needs no other file.
    """
    if runs_folder is not None:
        run_dir = f"{runs_folder.rstrip('/')}/slurm-$SLURM_JOB_ID"
    if profile.scheduler != "slurm":
        raise TrainwizError(f"profile '{profile.name}' does not say scheduler: slurm")
    args = list(args or [])
    # The single-machine builder refuses more machines without an address; Slurm supplies it.
    one = replace(profile, scheduler="local", slurm=None, num_machines=1, machine_rank=0,
                  main_address=None, rdzv_backend="c10d")
    words, env = launcher_words(one, script, args, run_dir=run_dir, run_id=run_id,
                                python=python, nproc=nproc, module=module)
    _set_nodes(words, profile, nproc)
    nodes = profile.machines
    world = nproc * nodes
    what = f"{nodes} node{'s' if nodes != 1 else ''} x {nproc} rank{'s' if nproc != 1 else ''}"
    dev = "GPU" if profile.device == "cuda" else "CPU"
    head = (f"trainwiz run {run_id}" if runs_folder is None else "trainwiz")
    lines = ["#!/bin/bash",
             f"# {head}: profile '{profile.name}', {profile.strategy}, {what} "
             f"({world} {dev} ranks), {profile.launcher} on every node."]
    if runs_folder is None:
        lines.append("# Written by `trainwiz launch`, which submitted it; to submit it again: "
                     "sbatch " + shlex.quote(f"{run_dir}/{SCRIPT_NAME}"))
    else:
        lines.append("# Written by trainwiz; submit it with `sbatch FILE`, follow it with "
                     "`trainwiz runs` (the run is slurm-<job id>).")
    lines.append("#")
    output = (f"{runs_folder.rstrip('/')}/slurm-%j.out" if runs_folder is not None else
              f"{run_dir}/slurm-%j.out")
    for opt, why in sbatch_options(profile, output=output, gpus_per_node=gpus_per_node):
        lines.append(f"#SBATCH {opt}" + (f"    # {why}" if why else ""))
    lines += ["", "set -euo pipefail", ""]
    lines += _comment_block(
        "The run directory must be on a filesystem every node shares (by default it is under\n"
        "your home; a profile's slurm.run_dir chooses another). Each node's supervisor writes\n"
        "its status, launcher log, rank logs and GPU samples to $RUN_DIR/nodes/<node>-<run id>/.")
    if runs_folder is None:
        lines.append(f"RUN_DIR={shlex.quote(run_dir)}")
    else:
        lines.append(f"RUN_DIR={shlex.quote(runs_folder.rstrip('/'))}/slurm-$SLURM_JOB_ID")
    lines.append("")
    lines += _comment_block(
        "c10d rendezvous on the job's first node, reached at the address Slurm itself uses for it\n"
        "(its NodeAddr); the job id names the rendezvous and picks a port, so two jobs sharing a\n"
        "node do not collide.")
    lines.append('MAIN_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)')
    lines.append('MAIN_ADDR=$(scontrol show node "$MAIN_NODE" -o | tr \' \' \'\\n\' '
                 '| sed -n \'s/^NodeAddr=//p\')')
    lines.append('MAIN_ADDR=${MAIN_ADDR:-$MAIN_NODE}')
    if profile.main_port:
        lines.append(f"RDZV_PORT={int(profile.main_port)}    # the profile's main_port")
    else:
        lines.append("RDZV_PORT=$((20000 + SLURM_JOB_ID % 10000))")
    lines.append('RDZV_ID="trainwiz-$SLURM_JOB_ID"')
    lines.append("")
    if env:
        lines += _comment_block("The plan's environment for every rank (as `trainwiz launch` "
                                "gives a local run).")
        for key in sorted(env):
            lines.append(f"export {key}={_word(_in_run_dir([env[key]], run_dir)[0])}")
        lines.append("")
    if profile.launcher == "accelerate" and accelerate_config:
        lines += _comment_block("accelerate's config for this profile (as `trainwiz profiles "
                                "export NAME --format accelerate` writes it).")
        lines.append('mkdir -p "$RUN_DIR"')
        lines.append("cat > \"$RUN_DIR/accelerate_config.yaml\" <<'TRAINWIZ_EOF'")
        lines += accelerate_config.rstrip("\n").splitlines()
        lines.append("TRAINWIZ_EOF")
        lines.append("")
    lines += _comment_block(
        "One task per node. Each runs trainwiz's supervisor (trainwiz's own interpreter and\n"
        "package) which starts the launcher below with its log folder set to the node's own,\n"
        "records the ranks, samples the node's GPUs, and on scancel stops the ranks cleanly.\n"
        "The first node hosts the rendezvous (is_host). When a node's ranks fail, its task exits\n"
        "non-zero and srun ends the other nodes' (--kill-on-bad-exit): no node waits forever.")
    sup = [trainwiz_python, "-c", BOOT.format(mod="slurm_node"), trainwiz_root, _Var('"$RUN_DIR"'),
           "--"]
    srun = ["srun", "--nodes=" + str(nodes), "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    lines.append(" ".join(_word(w) for w in srun) + " \\")
    lines.append("  " + " ".join(_word(w) for w in sup) + " \\")
    lines += _wrap(_in_run_dir(words, run_dir))
    return "\n".join(lines) + "\n"


def _set_nodes(words: list, profile, nproc: int) -> None:
    """The job's node count (and accelerate's total process count) in the launcher's options."""
    nodes = profile.machines
    for opt, value in (("--nnodes", nodes), ("--num_machines", nodes),
                       ("--num_processes", nproc * nodes)):
        if opt in words:
            words[words.index(opt) + 1] = str(value)


def _wrap(words: list, width: int = 96) -> list[str]:
    """The launcher command, one option (with its value) a line, continued with backslashes."""
    groups: list[list] = []
    i = 0
    while i < len(words):
        w = words[i]
        if isinstance(w, str) and w.startswith("-") and i + 1 < len(words) and not (
                isinstance(words[i + 1], str) and words[i + 1].startswith("-")) and i > 0:
            groups.append([w, words[i + 1]])
            i += 2
        else:
            groups.append([w])
            i += 1
    out = []
    line = "   "
    for g in groups:
        text = " ".join(_word(w) for w in g)
        if len(line) + 1 + len(text) > width and line.strip():
            out.append(line + " \\")
            line = "   "
        line += " " + text
    out.append(line)
    return out
