"""The same tiny model through accelerate's ``Accelerator``, printing the loss per step.

    trainwiz launch --profile examples/profiles/cpu-accelerate.yaml examples/train_accelerate.py

``Accelerator()`` reads its settings (mixed precision, FSDP, CPU) from the environment that
``accelerate launch`` or trainwiz's torchrun launch sets; it picks NCCL on GPUs and gloo on CPU.
The batch size comes from the plan (``TRAINWIZ_BATCH_SIZE``) unless ``--batch-size`` is given;
the ``step N loss X`` lines are what the monitor reads for progress.
"""

import argparse
import gc
import os
import time

import torch
from accelerate import Accelerator
from torch.distributed.elastic.multiprocessing.errors import record


@record
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int,
                        default=int(os.environ.get("TRAINWIZ_BATCH_SIZE", "16")),
                        help="rows per step (default: the plan's TRAINWIZ_BATCH_SIZE, else 16)")
    args = parser.parse_args()

    accelerator = Accelerator()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, opt = accelerator.prepare(model, opt)
    rank = accelerator.process_index
    gen = torch.Generator().manual_seed(rank)
    for step in range(args.steps):
        x = torch.randn(args.batch_size, 32, generator=gen).to(accelerator.device)
        y = x.sum(dim=1, keepdim=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        accelerator.backward(loss)
        opt.step()
        print(f"rank {rank} step {step} loss {loss.item():.4f} "
              f"({accelerator.distributed_type}, {accelerator.num_processes} processes, "
              f"mixed_precision={accelerator.mixed_precision})", flush=True)
        if args.sleep:
            time.sleep(args.sleep)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    del model, opt
    accelerator.free_memory()
    gc.collect()
    if torch.distributed.is_initialized():  # a clean exit: gloo may abort at exit otherwise
        torch.distributed.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
