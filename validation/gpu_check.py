"""``python -m validation.gpu_check [--out FILE]``: the estimate against a real GPU.

For sessions that have a GPU: real-size single-GPU configs (a 1B Llama-3.2-style model in bf16
autocast at sequence 2048, with and without activation checkpointing; GPT-2 in fp32) run three
training steps on CUDA; the third is measured with ``torch.cuda.max_memory_allocated()`` (after
``reset_peak_memory_stats``) and ``memory_reserved``, and set beside the estimate's
``peak_allocated`` and ``total``. Also records the NVML reading of the process' memory, which is
what ``total`` (with CUDA context and allocator slack) is meant to cover. Results are printed and
written as JSON (commit them as ``docs/gpu-validation.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

CONFIGS = [
    # name, catalog model, batch, seq, precision, activation checkpointing
    ("llama-3.2-1b-bf16-b1-s2048", "llama-3.2-1b", 1, 2048, "bf16", False),
    ("llama-3.2-1b-bf16-b2-s2048-ac", "llama-3.2-1b", 2, 2048, "bf16", True),
    ("llama-3.2-1b-bf16-b4-s1024", "llama-3.2-1b", 4, 1024, "bf16", False),
    ("gpt2-fp32-b8-s1024", "gpt2", 8, 1024, "fp32", False),
    ("qwen2.5-0.5b-bf16-b4-s2048", "qwen2.5-0.5b", 4, 2048, "bf16", False),
]


def _measure(model_name: str, batch: int, seq: int, precision: str, ckpt: bool) -> dict:
    import torch
    import transformers

    from trainwiz.estimator.models import catalog

    cfg = dict(catalog()[model_name]["config"])
    config = transformers.AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation="sdpa", dtype=torch.float32).cuda()
    model.train()
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    ids = torch.randint(0, cfg["vocab_size"], (batch, seq), device="cuda")
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
    for step in range(3):
        if step == 2:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with amp:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        del loss
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    out = {"max_memory_allocated": torch.cuda.max_memory_allocated(),
           "max_memory_reserved": torch.cuda.max_memory_reserved()}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid():
                out["nvml_process_memory"] = proc.usedGpuMemory
        out["gpu_name"] = pynvml.nvmlDeviceGetName(handle)
    except Exception as exc:  # noqa: BLE001 - NVML is a bonus reading here
        out["nvml_error"] = repr(exc)
    del model, opt
    torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.gpu_check")
    parser.add_argument("--out", default="docs/gpu-validation.json")
    args = parser.parse_args(argv)
    import torch

    from trainwiz.estimator import TrainConfig, estimate, resolve_model

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check")
        return 0
    results = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": {}}
    for name, model_name, batch, seq, precision, ckpt in CONFIGS:
        est = estimate(resolve_model(model_name), TrainConfig(
            batch_size=batch, seq_len=seq, precision=precision, activation_checkpointing=ckpt),
            suggestions=False)
        try:
            got = _measure(model_name, batch, seq, precision, ckpt)
        except torch.cuda.OutOfMemoryError as exc:
            got = {"error": f"OOM: {exc}"}
        row = {"estimated_peak_allocated": est.per_gpu.peak_allocated,
               "estimated_total": est.per_gpu.total, **got}
        if "max_memory_allocated" in got:
            row["error"] = (est.per_gpu.peak_allocated - got["max_memory_allocated"]) / got["max_memory_allocated"]
            print(f"{name:32s} measured {got['max_memory_allocated'] / 2**30:6.2f} GiB  "
                  f"estimated {est.per_gpu.peak_allocated / 2**30:6.2f} GiB  ({100 * row['error']:+.1f}%)  "
                  f"reserved {got['max_memory_reserved'] / 2**30:6.2f}  total est {est.per_gpu.total / 2**30:6.2f}")
        results["cases"][name] = row
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
