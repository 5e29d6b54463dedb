"""Plain torch FSDP2 (``fully_shard``): a tiny transformer-ish stack, printing the loss per step.

    trainwiz launch --profile examples/profiles/cpu-fsdp.yaml examples/train_fsdp2.py

NCCL with one GPU per rank when CUDA is available, gloo on CPU otherwise. Batch and sequence
length come from the plan (``TRAINWIZ_BATCH_SIZE``, ``TRAINWIZ_SEQ_LEN``) unless given; rank 0
prints a ``TRAINWIZ {json}`` line a step (step, total, loss, tokens) for the monitor.
"""

import argparse
import gc
import json
import os
import time

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record
from torch.distributed.fsdp import fully_shard


class Block(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.ff = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(),
                                      torch.nn.Linear(4 * dim, dim))

    def forward(self, x):
        return x + self.ff(self.norm(x))


@record
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int,
                        default=int(os.environ.get("TRAINWIZ_BATCH_SIZE", "8")))
    parser.add_argument("--seq-len", type=int,
                        default=int(os.environ.get("TRAINWIZ_SEQ_LEN", "16")))
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available()
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if "WORLD_SIZE" not in os.environ:  # plain `python train_fsdp2.py`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29531")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[Block(args.dim) for _ in range(args.layers)],
                                torch.nn.Linear(args.dim, 1)).to(device)
    for block in model[:-1]:
        fully_shard(block)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(rank)
    for step in range(args.steps):
        x = torch.randn(args.batch_size, args.seq_len, args.dim, generator=gen).to(device)
        y = x.mean(dim=-1, keepdim=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"rank {rank} step {step} loss {loss.item():.4f}", flush=True)
        if rank == 0:
            tokens = (step + 1) * args.batch_size * args.seq_len * dist.get_world_size()
            print("TRAINWIZ " + json.dumps({"step": step + 1, "total": args.steps,
                                             "loss": round(loss.item(), 5), "tokens": tokens}),
                  flush=True)
        if args.sleep:
            time.sleep(args.sleep)
    dist.barrier()  # a clean gloo exit: all ranks done, nothing holding the group, then destroy
    del model, opt
    gc.collect()
    dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
