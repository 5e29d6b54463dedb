"""``trainwiz profiles show NAME``: a profile's settings, where it lives, and its plan's estimate
and time on this (or the simulated) box."""

from __future__ import annotations

import argparse

from trainwiz.cli import simulate_spec
from trainwiz.cli.config import format_estimate, plan_line
from trainwiz.cli.profiles import profile_summary, rich_console
from trainwiz.estimator.timing import summary_lines
from trainwiz.hardware import detect
from trainwiz.plan import Plan, box_from_gpus, resolve_model
from trainwiz.profiles import (
    ProfileError,
    check_profile_gpus,
    estimate_notes,
    load_profile,
    profile_time,
    profile_to_dict,
    resolve_profile_path,
)
from trainwiz.profiles.validate import dump_yaml


def cmd_show(args: argparse.Namespace) -> int:
    path = resolve_profile_path(args.name)
    profile = load_profile(args.name)
    data = profile_to_dict(profile)
    if args.json:
        import json

        print(json.dumps({"name": profile.name, "path": str(path), "profile": data}, indent=2))
        return 0
    from rich.markup import escape
    from rich.syntax import Syntax

    # once, and first: a bad --simulate is an error before anything is printed
    detection = detect(simulate_spec(args))
    count = len(detection.gpus) or None
    console = rich_console()
    console.print(f"[bold]{escape(profile.name)}[/]  {escape(str(path))}")
    console.print(escape(profile_summary(profile)))
    console.print(Syntax(dump_yaml(data), "yaml", theme="ansi_dark", background_color="default"))
    if count:
        try:
            check_profile_gpus(profile, count)
        except ProfileError as exc:
            console.print(f"[yellow]warning: on this machine: {escape(str(exc))}[/]")
    if profile.estimate is not None:
        here = box_from_gpus(detection.gpus, simulated=detection.source == "simulated")
        plan = Plan.from_profile(profile, here)
        for line in _plan_lines(profile, plan, here, detection):
            console.print(escape(line))
        for text in _time_lines(profile, plan, detection):
            console.print(escape(text))
        for note in estimate_notes(profile):
            console.print(f"[dim]note: {escape(note)}[/]")
    return 0


def _plan_lines(profile, plan, here, detection) -> list[str]:
    """The estimate of the profile's plan, how this box differs from the hardware it was
    planned for and, then, the same plan on this box: `--simulate 2x4090` asks whether it fits
    there, which the verdict against the planned GPUs does not say."""
    lines = plan_line(profile, detection)
    if plan.model and not plan.box.here and here.gpus:
        lines.append("On this box: " + format_estimate(
            plan.on_box(here).estimate(resolve_model(plan.model))).removeprefix("Memory per GPU: "))
    return lines


def _time_lines(profile, plan, detection) -> list[str]:
    """How long the plan takes on this (or the simulated) box, with the profile's training
    length (when the plan is for this box's GPUs)."""
    if not plan.model or not plan.box.here:
        return []
    if plan.device == "cpu":  # CPU ranks: the time model is the GPUs' (never their figure)
        return ["time: not estimated (CPU ranks; the time model covers GPUs)"]
    est = plan.estimate(resolve_model(plan.model)).estimate
    used = {g.index for g in plan.used_gpus()}
    time, _ = profile_time(profile, est, [g for g in detection.gpus if g.index in used])
    return summary_lines(time, est.fits)
