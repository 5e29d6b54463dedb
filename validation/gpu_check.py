"""``python -m validation.gpu_check``: the estimate against real GPUs.

For a session that has a CUDA GPU. Each case (:data:`CASES`) is a real-size model from the
catalog, built from its config with random weights directly on the GPU, trained for a few steps
in both training loops, each case in its own process (a clean CUDA context and allocator):

- ``custom``: ``outputs = model(**batch)`` kept until the next forward returns (accelerate's
  examples); ``trainer``: ``loss = model(**batch).loss`` (outputs dropped before backward).
- Precisions as ``trainwiz estimate`` means them: ``fp32``; ``bf16`` = autocast over fp32
  weights (under FSDP2 also ``MixedPrecisionPolicy`` bf16 param/reduce/output, as accelerate sets
  it up); ``bf16-pure`` = the model loaded in bf16, no autocast.
- DDP and FSDP2 cases run on 2 GPUs (NCCL) and are skipped, and listed as skipped, on a box
  with fewer.

Per loop it records ``torch.cuda.max_memory_allocated()`` of a steady-state step (peak stats
reset after the warm-up steps; also the peak of each phase), ``max_memory_reserved()`` and the
device's used memory after the step (``mem_get_info``: what nvidia-smi shows, CUDA context
included), and sets them beside the estimate's ``peak_allocated`` and ``total``. Results go to
``docs/gpu-validation.json`` and the table ``docs/gpu-validation.md`` (``--report-only``
regenerates the table from the JSON without a GPU). Commit both.

Run it as one prepared command on a GPU box (about 3 minutes on one H100/H200):

    python -m validation.gpu_check            # every case this box has the GPUs for
    python -m validation.gpu_check --case NAME --out /tmp/x.json --markdown /tmp/x.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOOPS = ("custom", "trainer")
PHASES = ("forward", "backward", "optimizer")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "docs" / "gpu-validation.json"
DEFAULT_MD = ROOT / "docs" / "gpu-validation.md"
TOLERANCE = 0.05  # the CPU suite's promise; on a GPU it is checked, not assumed


@dataclass(frozen=True)
class GpuCase:
    name: str
    model: str  # catalog name
    strategy: str = "single"
    num_gpus: int = 1
    precision: str = "bf16"  # fp32 | bf16 (autocast over fp32 weights) | bf16-pure
    optimizer: str = "adamw"  # adamw | sgd, foreach (CUDA's default)
    batch_size: int = 1
    seq_len: int = 2048
    activation_checkpointing: bool = False
    attention: str = "sdpa"
    sharding: str = "FULL_SHARD"  # fsdp: FULL_SHARD (reshard after forward) | SHARD_GRAD_OP
    overrides: dict = field(default_factory=dict)  # config.json fields changed from the catalog

    def hf_config(self) -> dict:
        from trainwiz.estimator.catalog import catalog

        return {**catalog()[self.model]["config"], **self.overrides, "use_cache": False}

    def train_config(self, loop: str):
        from trainwiz.estimator.types import TrainConfig

        return TrainConfig(strategy=self.strategy, num_gpus=self.num_gpus,
                           sharding=self.sharding, precision=self.precision,
                           optimizer=self.optimizer, batch_size=self.batch_size,
                           seq_len=self.seq_len,
                           activation_checkpointing=self.activation_checkpointing,
                           attention=self.attention, loop=loop)


CASES = [
    GpuCase("llama-3.2-1b-bf16-b2-s2048", "llama-3.2-1b", batch_size=2),
    GpuCase("llama-3.2-1b-bf16-b4-s2048-ac", "llama-3.2-1b", batch_size=4,
            activation_checkpointing=True),
    GpuCase("llama-3.2-1b-pure-b2-s2048", "llama-3.2-1b", precision="bf16-pure", batch_size=2),
    GpuCase("llama-3.2-1b-fp32-sgd-b1-s1024", "llama-3.2-1b", precision="fp32", optimizer="sgd",
            seq_len=1024),
    GpuCase("qwen2.5-0.5b-bf16-b4-s2048", "qwen2.5-0.5b", batch_size=4),
    GpuCase("qwen2.5-0.5b-pure-b4-s2048-ac", "qwen2.5-0.5b", precision="bf16-pure",
            batch_size=4, activation_checkpointing=True),
    # GPT-2 and BERT configs carry attention dropout 0.1: SDPA's CUDA kernels keep no mask,
    # eager keeps the softmax output, the mask and the dropped probabilities
    GpuCase("gpt2-fp32-b8-s1024", "gpt2", precision="fp32", batch_size=8, seq_len=1024),
    GpuCase("gpt2-eager-bf16-b8-s1024", "gpt2", batch_size=8, seq_len=1024, attention="eager"),
    GpuCase("bert-base-eager-fp32-b16-s512", "bert-base-cased", precision="fp32",
            batch_size=16, seq_len=512, attention="eager"),
    GpuCase("ddp-llama-3.2-1b-bf16-b2-s2048", "llama-3.2-1b", strategy="ddp", num_gpus=2,
            batch_size=2),
    GpuCase("fsdp-llama-3.2-1b-bf16-b2-s2048", "llama-3.2-1b", strategy="fsdp", num_gpus=2,
            batch_size=2),
    GpuCase("fsdp-llama-3.2-1b-pure-b4-s2048", "llama-3.2-1b", strategy="fsdp", num_gpus=2,
            precision="bf16-pure", batch_size=4),
]
CASES_BY_NAME = {c.name: c for c in CASES}


def runnable(cases: list[GpuCase], gpu_count: int) -> tuple[list[GpuCase], list[GpuCase]]:
    """(the cases this box can run, the ones it has too few GPUs for)."""
    return ([c for c in cases if c.num_gpus <= gpu_count],
            [c for c in cases if c.num_gpus > gpu_count])


def estimate_for(case: GpuCase, loop: str):
    from trainwiz.estimator.fit import estimate
    from trainwiz.estimator.catalog import model_from_hf_config

    model = model_from_hf_config(case.hf_config(), name=case.model, source="catalog")
    return estimate(model, case.train_config(loop), suggestions=False)


# --------------------------------------------------------------------------- on the GPU

def _build(case: GpuCase, device):
    import torch
    import transformers

    cfg = case.hf_config()
    model_type = cfg.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    auto = (transformers.AutoModelForMaskedLM if config.architectures[0].endswith("ForMaskedLM")
            else transformers.AutoModelForCausalLM)
    dtype = torch.bfloat16 if case.precision == "bf16-pure" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = auto.from_config(config, attn_implementation=case.attention, dtype=dtype)
    model.train()
    if case.activation_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model, cfg["vocab_size"]


def _wrap(case: GpuCase, model, device, world: int):
    import torch

    if case.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index])
    if case.strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh("cuda", (world,))
        mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16,
                                   output_dtype=torch.bfloat16)
              if case.precision == "bf16" else MixedPrecisionPolicy())
        kw = {"mesh": mesh, "reshard_after_forward": case.sharding == "FULL_SHARD",
              "mp_policy": mp}
        layers = [m for m in model.modules()
                  if isinstance(m, torch.nn.ModuleList) and len(m) == model.config.num_hidden_layers]
        for layer in layers[0]:
            fully_shard(layer, **kw)
        fully_shard(model, **kw)
    return model


def _measure(case: GpuCase, rank: int = 0, world: int = 1) -> dict:
    import contextlib
    import gc

    import torch

    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    model, vocab = _build(case, device)
    model = _wrap(case, model, device, world)
    opt_cls = torch.optim.AdamW if case.optimizer == "adamw" else torch.optim.SGD
    kw = {"lr": 1e-5, "foreach": True} | ({"momentum": 0.9} if case.optimizer == "sgd" else {})
    opt = opt_cls(model.parameters(), **kw)
    g = torch.Generator(device=device).manual_seed(1 + rank)
    ids = torch.randint(0, vocab, (case.batch_size, case.seq_len), device=device, generator=g)
    batch = {"input_ids": ids, "labels": ids}

    def amp():
        if case.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def phase_mark(peaks: dict | None, phase: str) -> None:
        if peaks is not None:
            torch.cuda.synchronize(device)
            peaks[phase] = torch.cuda.max_memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)

    def step(holder: dict | None, peaks: dict | None = None) -> None:
        with amp():
            if holder is None:
                loss = model(**batch).loss
            else:
                holder["outputs"] = model(**batch)
                loss = holder["outputs"].loss
        phase_mark(peaks, "forward")
        loss.backward()
        del loss
        phase_mark(peaks, "backward")
        opt.step()
        phase_mark(peaks, "optimizer")
        opt.zero_grad(set_to_none=True)

    out: dict = {}
    holder: dict = {}
    step(None)  # optimizer state exists after this one
    step(holder)  # the custom loop's outputs are alive when the measured step starts
    for loop in LOOPS:
        if loop == "trainer":
            holder = None
            gc.collect()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        peaks: dict = {}
        step(holder, peaks)
        free, total = torch.cuda.mem_get_info(device)
        out[loop] = {"max_memory_allocated": max(peaks.values()), "peak_by_phase": peaks,
                     "peak_phase": max(PHASES, key=lambda p: peaks[p]),
                     "max_memory_reserved": torch.cuda.max_memory_reserved(device),
                     "device_used": total - free}
    return {"loops": out, "rank": rank, "gpu": torch.cuda.get_device_name(device)}


def _dist_worker(rank: int, world: int, port: int, name: str, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    try:
        res = _measure(CASES_BY_NAME[name], rank, world)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def measure_case(case: GpuCase) -> dict:
    """Measure one case in this process (single) or in ``num_gpus`` spawned ranks."""
    if case.num_gpus == 1:
        return _measure(case)
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_dist_worker, args=(case.num_gpus, port, case.name, tmp), nprocs=case.num_gpus,
                 join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(case.num_gpus)]
    return {**ranks[0], "ranks": ranks}


# --------------------------------------------------------------------------- results and table

def with_estimates(case: GpuCase, measured: dict) -> dict:
    """The measurement with the estimate for each loop beside it (pure: no torch)."""
    out = {"case": asdict(case), **{k: v for k, v in measured.items() if k != "loops"},
           "loops": {}}
    for loop, m in measured.get("loops", {}).items():
        est = estimate_for(case, loop)
        out["loops"][loop] = {**m, "estimated_peak_allocated": est.per_gpu.peak_allocated,
                              "estimated_total": est.per_gpu.total,
                              "estimated_peak_at": est.terms.get("peak_at")}
    return out


def rows(results: dict) -> list[dict]:
    """One row per measured case and loop: the figures and their errors (pure)."""
    out = []
    for name, r in results.get("cases", {}).items():
        for loop, m in r.get("loops", {}).items():
            alloc, est = m["max_memory_allocated"], m["estimated_peak_allocated"]
            used = m.get("device_used")
            out.append({
                "name": f"{name} [{loop}]", "measured": alloc, "estimated": est,
                "error": (est - alloc) / alloc, "reserved": m["max_memory_reserved"],
                "device_used": used, "total": m["estimated_total"],
                "total_error": (m["estimated_total"] - used) / used if used else None,
                "phase": m.get("peak_phase", "?"), "estimated_at": m.get("estimated_peak_at", "?"),
            })
    return out


def markdown(results: dict) -> str:
    def gib(n):
        return "—" if n is None else f"{n / 2**30:.2f}"

    def pct(x):
        return "—" if x is None else f"{100 * x:+.1f}%"

    lines = ["# Estimator validation on a GPU", ""]
    if not results.get("cases"):
        lines += ["Not measured yet: no session with a CUDA GPU has run "
                  "`python -m validation.gpu_check`. The CPU validation is in "
                  "[validation.md](validation.md).", ""]
        return "\n".join(lines)
    lines += [
        "Generated by `python -m validation.gpu_check` (or `--report-only` from "
        f"`docs/gpu-validation.json`): torch {results.get('torch', '?')}, transformers "
        f"{results.get('transformers', '?')}, {results.get('gpu_count', '?')}× "
        f"{results.get('device', '?')}, measured {results.get('date', '?')}.",
        "",
        "`measured` is `torch.cuda.max_memory_allocated()` of a steady-state step, compared "
        "with the estimate's `peak_allocated`; `used` is the device's used memory after the step "
        "(CUDA context, allocator reserve and all: what nvidia-smi shows), compared with the "
        "estimate's `total`.",
        "",
        "| case [loop] | measured GiB | estimated GiB | error | reserved GiB | used GiB | "
        "total GiB | its error | peak in (measured / estimated) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rs = rows(results)
    for r in rs:
        lines.append(f"| {r['name']} | {gib(r['measured'])} | {gib(r['estimated'])} | "
                     f"{pct(r['error'])} | {gib(r['reserved'])} | {gib(r['device_used'])} | "
                     f"{gib(r['total'])} | {pct(r['total_error'])} | "
                     f"{r['phase']} / {r['estimated_at']} |")
    if rs:
        worst = max(rs, key=lambda r: abs(r["error"]))
        inside = sum(abs(r["error"]) <= TOLERANCE for r in rs)
        lines += ["", f"{inside}/{len(rs)} within {TOLERANCE:.0%} of max_memory_allocated; "
                      f"mean |error| {100 * sum(abs(r['error']) for r in rs) / len(rs):.1f}%, "
                      f"worst {pct(worst['error'])} ({worst['name']})."]
    skipped = results.get("skipped", {})
    if skipped:
        lines += ["", "Not run here: " + "; ".join(f"{n} ({why})" for n, why in skipped.items())
                  + "."]
    errors = {n: r["error"] for n, r in results.get("cases", {}).items() if "error" in r}
    if errors:
        lines += ["", "Failed: " + "; ".join(f"{n}: {e}" for n, e in errors.items()) + "."]
    lines.append("")
    return "\n".join(lines)


def _run_one(name: str, out: str) -> int:
    res = measure_case(CASES_BY_NAME[name])
    Path(out).write_text(json.dumps(res))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.gpu_check")
    parser.add_argument("--out", default=str(DEFAULT_JSON), help="results JSON")
    parser.add_argument("--markdown", default=str(DEFAULT_MD), help="the generated table")
    parser.add_argument("--case", action="append", help="case name (repeatable); default all")
    parser.add_argument("--report-only", action="store_true",
                        help="regenerate the table from the results JSON (no GPU needed)")
    parser.add_argument("--list", action="store_true", help="list the cases")
    parser.add_argument("--one", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        return _run_one(args.one, args.out)
    if args.list:
        for c in CASES:
            print(f"{c.name}  ({c.num_gpus} GPU{'s' if c.num_gpus > 1 else ''})")
        return 0
    if args.report_only:
        results = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        Path(args.markdown).write_text(markdown(results))
        print(f"wrote {args.markdown}")
        return 0
    unknown = [n for n in args.case or [] if n not in CASES_BY_NAME]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES_BY_NAME)}",
              file=sys.stderr)
        return 2
    import torch
    import transformers

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing measured, nothing written")
        return 0
    gpu_count = torch.cuda.device_count()
    wanted = [CASES_BY_NAME[n] for n in args.case] if args.case else CASES
    todo, too_big = runnable(wanted, gpu_count)
    results = {"torch": torch.__version__, "transformers": transformers.__version__,
               "device": torch.cuda.get_device_name(0), "gpu_count": gpu_count,
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": {},
               "skipped": {c.name: f"needs {c.num_gpus} GPUs, this box has {gpu_count}"
                           for c in too_big}}
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for case in todo:
        t0 = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            proc = subprocess.run([sys.executable, "-m", "validation.gpu_check", "--one",
                                   case.name, "--out", tmp.name], env=env, capture_output=True,
                                  text=True)
            if proc.returncode == 0:
                results["cases"][case.name] = with_estimates(case, json.loads(Path(tmp.name).read_text()))
            else:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                oom = "OutOfMemoryError" in proc.stderr
                results["cases"][case.name] = {"case": asdict(case), "loops": {},
                                               "error": ("OOM: " if oom else "") + " | ".join(tail)}
        r = results["cases"][case.name]
        for loop, m in r.get("loops", {}).items():
            err = (m["estimated_peak_allocated"] - m["max_memory_allocated"]) / m["max_memory_allocated"]
            print(f"{case.name:36s} {loop:8s} measured {m['max_memory_allocated'] / 2**30:6.2f} GiB"
                  f"  estimated {m['estimated_peak_allocated'] / 2**30:6.2f} GiB ({100 * err:+.1f}%)"
                  f"  used {m['device_used'] / 2**30:6.2f}  total est "
                  f"{m['estimated_total'] / 2**30:6.2f}", flush=True)
        if "error" in r:
            print(f"{case.name:36s} FAILED: {r['error']}", flush=True)
        print(f"  ({time.perf_counter() - t0:.0f}s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    Path(args.markdown).write_text(markdown(results))
    print(f"wrote {args.out} and {args.markdown}")
    return 0 if all("error" not in r for r in results["cases"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
