"""PEFT LoRA (or QLoRA) fine-tuning of a small causal LM, run the way the trainwiz plan says.

    trainwiz launch --profile examples/profiles/cpu-lora.yaml examples/train_lora.py -- --steps 10

The plan comes from the ``TRAINWIZ_*`` variables trainwiz sets for every rank (each has a
default, so ``python examples/train_lora.py`` and ``torchrun`` work too):

    TRAINWIZ_MODEL                      a Hugging Face model folder or config.json (a config
                                        alone gives random weights); default examples/tiny-llama
    TRAINWIZ_BATCH_SIZE, TRAINWIZ_SEQ_LEN, TRAINWIZ_GRAD_ACCUM
    TRAINWIZ_PRECISION                  no | bf16 | fp16 (autocast)
    TRAINWIZ_ACTIVATION_CHECKPOINTING   true | false
    TRAINWIZ_METHOD                     lora | qlora (full trains every weight, without PEFT)
    TRAINWIZ_LORA_RANK, TRAINWIZ_LORA_ALPHA, TRAINWIZ_LORA_DROPOUT, TRAINWIZ_LORA_TARGETS
    TRAINWIZ_RUN_DIR                    rank 0 appends each step to metrics.jsonl there

QLoRA loads the base in 4-bit NF4 with double quantization and bf16 compute (bitsandbytes;
it quantizes on CPU too), then ``prepare_model_for_kbit_training``, as the QLoRA recipe does.
DDP over gloo on CPU, NCCL with one GPU per rank when CUDA is available.
"""

import argparse
import contextlib
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel as DDP

HERE = Path(__file__).resolve().parent


def plan(name: str, default: str) -> str:
    value = os.environ.get(f"TRAINWIZ_{name}", "")
    return value if value.strip() else default


def load_model(source: str, method: str, device, ckpt: bool):
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    path = Path(source)
    folder = path if path.is_dir() else path.parent
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    config_file = folder / "config.json" if path.is_dir() else path
    tmp = None
    if method == "qlora" and not has_weights:  # 4-bit loading needs weights on disk
        tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_file)).save_pretrained(
            tmp.name)
        folder, has_weights = Path(tmp.name), True
    if method == "qlora":
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                 bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb,
                                                     device_map={"": device})
    elif has_weights:
        model = AutoModelForCausalLM.from_pretrained(folder).to(device)
    else:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_file)).to(device)
    if tmp is not None:
        tmp.cleanup()
    model.config.use_cache = False
    kwargs = {"use_reentrant": False}
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ckpt,
                                                gradient_checkpointing_kwargs=kwargs)
    elif ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


@record  # failures land in torchrun's error file, so `trainwiz runs` shows the message
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    model_source = plan("MODEL", str(HERE / "tiny-llama"))
    if not Path(model_source).exists():  # a catalog name: this example needs the files
        model_source = str(HERE / "tiny-llama")
    batch = int(plan("BATCH_SIZE", "4"))
    seq = int(plan("SEQ_LEN", "128"))
    accum = int(plan("GRAD_ACCUM", "1"))
    precision = plan("PRECISION", "no")
    ckpt = plan("ACTIVATION_CHECKPOINTING", "false") == "true"
    method = plan("METHOD", "lora")
    rank_r = int(plan("LORA_RANK", "8"))
    alpha = float(plan("LORA_ALPHA", str(2 * rank_r)))
    dropout = float(plan("LORA_DROPOUT", "0.0"))
    targets = plan("LORA_TARGETS", "all-linear")

    use_cuda = torch.cuda.is_available()
    distributed = "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    # Load before joining the group: transformers writes checkpoints from rank 0 only once a
    # group exists, and QLoRA from a bare config.json saves random weights first on every rank.
    model = load_model(model_source, method, device, ckpt)
    if distributed:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=rank_r, lora_alpha=alpha, lora_dropout=dropout, task_type="CAUSAL_LM",
                            target_modules=targets if targets == "all-linear" else
                            [t.strip() for t in targets.split(",") if t.strip()])
        model = get_peft_model(model, config)
        if rank == 0:
            model.print_trainable_parameters()
    model.train()
    if distributed:
        model = DDP(model, device_ids=[local_rank] if use_cuda else None)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())

    vocab = (model.module if distributed else model).config.vocab_size
    gen = torch.Generator().manual_seed(rank)
    run_dir = os.environ.get("TRAINWIZ_RUN_DIR")
    metrics = open(os.path.join(run_dir, "metrics.jsonl"), "a") if run_dir and rank == 0 else None
    for step in range(args.steps):
        for micro in range(accum):
            ids = torch.randint(0, vocab, (batch, seq), generator=gen).to(device)
            sync = contextlib.nullcontext()
            if distributed and micro < accum - 1:
                sync = model.no_sync()
            with sync:
                with autocast:
                    loss = model(input_ids=ids, labels=ids).loss / accum
                loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        print(f"rank {rank} step {step} loss {loss.item() * accum:.4f}", flush=True)
        if metrics is not None:
            metrics.write(json.dumps({"step": step + 1, "total": args.steps,
                                      "loss": loss.item() * accum,
                                      "tokens": (step + 1) * batch * seq * accum * world,
                                      "time": time.time()}) + "\n")
            metrics.flush()
    if distributed:
        # A clean gloo exit: every rank waits, the DDP reducer goes, then the group.
        dist.barrier()
        del model, opt
        gc.collect()
        dist.destroy_process_group()
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
