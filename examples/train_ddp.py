"""Plain torch DDP: a tiny MLP for a few steps, printing the loss of every step.

    trainwiz launch --profile examples/profiles/cpu-ddp.yaml examples/train_ddp.py -- --steps 20

The batch size comes from the plan (``TRAINWIZ_BATCH_SIZE``, set by trainwiz for every rank)
unless ``--batch-size`` says otherwise. Rank 0 appends each step to
``$TRAINWIZ_RUN_DIR/metrics.jsonl`` (step, total, loss, tokens), which the monitor reads for
progress.

Uses NCCL and one GPU per rank when CUDA is available, gloo on CPU otherwise. Works under
``torchrun`` (or ``trainwiz launch``) and as a plain ``python train_ddp.py`` (one process).
"""

import argparse
import gc
import json
import os
import time

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel as DDP


@record  # failures land in torchrun's error file, so `trainwiz runs` shows the message
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int,
                        default=int(os.environ.get("TRAINWIZ_BATCH_SIZE", "16")),
                        help="rows per step (default: the plan's TRAINWIZ_BATCH_SIZE, else 16)")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to wait per step")
    parser.add_argument("--fail-rank", type=int, default=None, help="this rank raises (testing)")
    parser.add_argument("--fail-step", type=int, default=2)
    parser.add_argument("--fail-oom", action="store_true",
                        help="the failing rank raises torch's out-of-memory error instead")
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available()
    distributed = "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if distributed:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, 1)).to(device)
    if distributed:
        model = DDP(model, device_ids=[local_rank] if use_cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(rank)
    run_dir = os.environ.get("TRAINWIZ_RUN_DIR")
    metrics = open(os.path.join(run_dir, "metrics.jsonl"), "a") if run_dir and rank == 0 else None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    for step in range(args.steps):
        if args.fail_rank == rank and step == args.fail_step:
            if args.fail_oom:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB "
                                             f"(simulated on rank {rank})")
            raise RuntimeError(f"rank {rank} failed on purpose at step {step}")
        x = torch.randn(args.batch_size, 32, generator=gen).to(device)
        y = x.sum(dim=1, keepdim=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"rank {rank} step {step} loss {loss.item():.4f}", flush=True)
        if metrics is not None:  # one "token" a row here: what the monitor calls tokens/s
            metrics.write(json.dumps({"step": step + 1, "total": args.steps, "loss": loss.item(),
                                      "tokens": (step + 1) * args.batch_size * world}) + "\n")
            metrics.flush()
        if args.sleep:
            time.sleep(args.sleep)
    if distributed:
        # A clean gloo exit: wait for every rank, drop what still holds the process group (the
        # DDP reducer), then destroy it while the interpreter is fully alive. Otherwise gloo's
        # threads can outlive it and abort the process at exit (SIGABRT) after a good run.
        dist.barrier()
        del model, opt
        gc.collect()
        dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
