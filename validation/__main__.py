"""``python -m validation measure [--case NAME ...] [--json FILE] [-j N]`` and
``python -m validation report [--markdown FILE]`` (estimate vs measured).

Runs each case in its own subprocess (clean memory, parallel with ``-j``), prints a table of the
measured peak and its breakdown, and writes the results (default
``validation/measured.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_JSON = Path(__file__).with_name("measured.json")
# tracker category -> short column header
CATEGORIES = {"Parameter": "Param", "Sharded Param": "ShParam", "Unsharded Param": "UnshParam",
              "Buffer": "Buf", "Gradient": "Grad", "Sharded Grad": "ShGrad",
              "Unsharded Grad": "UnshGrad", "Activation": "Act", "Temp": "Temp",
              "Optstate": "Opt", "OptState": "Opt", "All Gather": "AllGath",
              "Reduce Scatter": "RedScat", "Inputs": "Inp", "Other": "Oth"}


def _mib(b: int) -> str:
    return f"{b / 2**20:.1f}"


def _run_one(name: str, out: str) -> None:
    from validation.cases import get_case
    from validation.measure import measure

    res = measure(get_case(name))
    with open(out, "w") as f:
        json.dump(res, f)


def _run_all(names: list[str], jobs: int) -> dict:
    """Run cases in subprocesses; a case with N ranks takes N of the ``jobs`` slots."""
    from validation.cases import get_case

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    pending = list(names)
    running: list[tuple[str, int, subprocess.Popen, str, float]] = []
    results: dict = {}
    tmp = tempfile.mkdtemp(prefix="trainwiz-validation-")
    while pending or running:
        used = sum(r[1] for r in running)
        while pending:
            need = min(get_case(pending[0]).num_gpus, jobs)
            if used + need > jobs and running:
                break
            name = pending.pop(0)
            out = os.path.join(tmp, f"{name}.json")
            p = subprocess.Popen([sys.executable, "-m", "validation", "_one", name,
                                  "--out", out], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            running.append((name, need, p, out, time.perf_counter()))
            used += need
        time.sleep(0.2)
        for item in list(running):
            name, _, p, out, t0 = item
            if p.poll() is None:
                continue
            running.remove(item)
            log = p.stdout.read() if p.stdout else ""
            if p.returncode == 0 and os.path.exists(out):
                with open(out) as f:
                    results[name] = json.load(f)
                loops = results[name]["loops"]
                print(f"  {name}: " + ", ".join(
                    f"{loop} {_mib(r['peak_total'])} MiB at {r['peak_phase']}"
                    for loop, r in loops.items()) + f" ({time.perf_counter() - t0:.0f}s)",
                    file=sys.stderr, flush=True)
            else:
                results[name] = {"error": f"exit {p.returncode}", "log_tail": log[-3000:]}
                print(f"  {name}: FAILED (exit {p.returncode})\n{log[-3000:]}", file=sys.stderr,
                      flush=True)
    return results


def _print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    runs = {}
    for name, r in results.items():
        if "error" in r:
            runs[name] = r
            continue
        for loop, lr in r["loops"].items():
            runs[f"{name} [{loop}]"] = {**r, **lr}
    results = runs
    cats = [c for c in CATEGORIES
            if any(r.get("peak_breakdown", {}).get(c) for r in results.values())]
    heads = list(dict.fromkeys(CATEGORIES[c] for c in cats))
    t = Table(title="Measured peak per rank (MiB, CPU MemTracker)")
    t.add_column("case")
    t.add_column("peak", justify="right")
    t.add_column("phase")
    for h in heads:
        t.add_column(h, justify="right")
    t.add_column("DDPbkt*", justify="right")
    t.add_column("spread", justify="right")
    t.add_column("s", justify="right")
    for name, r in results.items():
        if "error" in r:
            t.add_row(name, "ERROR", r["error"])
            continue
        b = r["peak_breakdown"]
        buckets = r.get("ddp_buckets", {}).get("computed_bytes")
        spread = r.get("rank_spread")
        t.add_row(name, _mib(r["peak_total"]), r["peak_phase"] or "?",
                  *[_mib(sum(v for k, v in b.items() if CATEGORIES.get(k) == h)) for h in heads],
                  _mib(buckets) if buckets is not None else "",
                  f"{100 * spread:.1f}%" if spread is not None else "",
                  f"{r.get('wall_seconds', 0):.0f}")
    Console(width=None if sys.stdout.isatty() else 220).print(t)
    print("spread: largest difference of another rank's peak from rank 0's.")
    print("* DDP's flat gradient buckets (gradient_as_bucket_view=False): allocated in C++ before "
          "the tracker starts, so they are registered with track_external and are INCLUDED in "
          "the peak, under Oth (as CUDA's max_memory_allocated sees them).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation")
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="measure validation cases on CPU")
    m.add_argument("--case", action="append", default=None, help="case name (repeatable)")
    m.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results")
    m.add_argument("-j", "--jobs", type=int, default=2, help="CPU cores to use (default 2)")
    sub.add_parser("list", help="list the case names")
    rep = sub.add_parser("report", help="estimated vs measured, per case and per term")
    rep.add_argument("--measured", default=str(DEFAULT_JSON), help="measurements to compare with")
    rep.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    rep.add_argument("--readme", metavar="FILE",
                     help="rewrite the accuracy summary between the validation markers in FILE")
    det = sub.add_parser("detail", help="activation storages after forward (single cases)")
    det.add_argument("name")
    one = sub.add_parser("_one")
    one.add_argument("name")
    one.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from validation.cases import CASES, CASES_BY_NAME

    if args.cmd == "_one":
        _run_one(args.name, args.out)
        return 0
    if args.cmd == "detail":
        from validation.cases import get_case
        from validation.measure import activation_histogram

        hist = activation_histogram(get_case(args.name))
        total = 0
        for size, n in sorted(hist.items(), key=lambda kv: -kv[0] * kv[1]):
            total += size * n
            print(f"{size:>14,} B x {n:3d} = {size * n / 2**20:9.2f} MiB")
        print(f"total activations after forward: {total / 2**20:.2f} MiB")
        return 0
    if args.cmd == "report":
        from validation.report import markdown, print_report, rows_from, update_readme

        doc = json.loads(Path(args.measured).read_text())
        rows = rows_from(doc["cases"])
        print_report(rows)
        if args.markdown:
            Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
            Path(args.markdown).write_text(markdown(rows, doc))
            print(f"wrote {args.markdown}")
        if args.readme:
            readme = Path(args.readme)
            readme.write_text(update_readme(readme.read_text(), rows))
            print(f"updated {args.readme}")
        return 0 if all(r.ok for r in rows) else 1
    if args.cmd == "list":
        for c in CASES:
            print(c.name)
        return 0
    names = args.case or [c.name for c in CASES]
    unknown = [n for n in names if n not in CASES_BY_NAME]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES_BY_NAME)}",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = _run_all(names, max(1, args.jobs))
    elapsed = time.perf_counter() - t0
    _print_table(results)
    import torch  # noqa: F401 - version stamp only
    import transformers

    doc = {"torch": torch.__version__, "transformers": transformers.__version__,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "jobs": args.jobs, "elapsed_seconds": round(elapsed, 1),
           "threads_per_rank": int(os.environ.get("TRAINWIZ_VALIDATION_THREADS", "1")),
           "cases": {n: results[n] for n in names}}
    path = Path(args.json)
    old = {}
    if path.exists() and args.case:  # measuring a subset updates the file, keeps the rest
        try:
            old = json.loads(path.read_text()).get("cases", {})
        except (OSError, ValueError):
            old = {}
    doc["cases"] = {**old, **doc["cases"]}
    tmpf = path.with_suffix(".json.tmp")
    tmpf.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    os.replace(tmpf, path)
    print(f"wrote {path} ({elapsed:.0f}s)")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
