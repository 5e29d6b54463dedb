"""Host facts the estimator and launcher need: CPU count, RAM total and available (psutil)."""

from __future__ import annotations

import os

from trainwiz.hardware.types import HostInfo


def host_info() -> HostInfo:
    """CPUs this process may use and the machine's RAM; a field is ``None`` if it can't be read."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    try:
        import psutil

        mem = psutil.virtual_memory()
        return HostInfo(cpu_count=cpus, ram_total=int(mem.total), ram_available=int(mem.available))
    except Exception:  # psutil missing or /proc unreadable: keep what we know
        return HostInfo(cpu_count=cpus)
