"""The full-screen app (Textual). Presentation only: every number comes from
``trainwiz.hardware``, ``trainwiz.estimator``, ``trainwiz.profiles`` and ``trainwiz.launchers``.

Entry points (imported lazily by the CLI; importing this package costs nothing)::

    trainwiz.tui.app.run_app(simulate: str | None) -> int      # `trainwiz` with no command
    trainwiz.tui.monitor_app.run_monitor(run_dir: Path) -> int # `trainwiz launch` / `attach`

Layout: ``app.py`` (modes, hardware polling), ``screens/`` one screen per file, ``widgets/``
one widget per file (each renders from plain values), ``styles/app.tcss``. Blocking work (NVML,
file reads, the launcher) runs in thread workers that post messages; the next poll is
scheduled only after the last one was shown. ``python -m benchmarks.tui`` times the first
frame.
"""
