"""Check or start a run where its profile says: on this machine (:mod:`api`: the detached
supervisor) or on a Slurm cluster (:mod:`slurm_submit`: sbatch). The package's ``launch`` and
``preflight`` are these, so the CLI and the app never choose themselves."""

from __future__ import annotations

from trainwiz.launchers import local, slurm_submit
from trainwiz.launchers.local import RunHandle
from trainwiz.launchers.checks import Preflight


def preflight(profile, script: str | None = None, args: list[str] | None = None, *,
              module: bool = False, simulate: str | None = None, yes: bool | None = False,
              confirm=None, cwd=None) -> Preflight:
    if profile.scheduler == "slurm":
        return slurm_submit.preflight(profile, script, args, module=module, yes=yes,
                                      confirm=confirm, cwd=cwd)
    return local.preflight(profile, script, args, module=module, simulate=simulate, yes=yes,
                         confirm=confirm, cwd=cwd)


def launch(profile, script: str | None = None, args: list[str] | None = None, *,
           detach: bool = True, module: bool = False, simulate: str | None = None,
           yes: bool = False, confirm=None, cwd=None, grace_s: float = 10.0,
           pre: Preflight | None = None) -> RunHandle:
    if profile.scheduler == "slurm":
        return slurm_submit.submit(profile, script, args, module=module, yes=yes,
                                   confirm=confirm, cwd=cwd, pre=pre)
    return local.launch(profile, script, args, detach=detach, module=module, simulate=simulate,
                      yes=yes, confirm=confirm, cwd=cwd, grace_s=grace_s, pre=pre)
