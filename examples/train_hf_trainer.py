"""A tiny Hugging Face ``Trainer`` run: a small Llama built from a config, a few dozen steps.

    trainwiz launch --profile examples/profiles/cpu-hf-trainer.yaml

The profile passes the plan as HF Trainer arguments through placeholders
(``--per_device_train_batch_size {batch_size} --gradient_checkpointing
{activation_checkpointing}``); any argument left out falls back to the ``TRAINWIZ_*`` variable
trainwiz sets for every rank, then to a small default. The Trainer's own output (its log dicts
and tqdm bar) is what the monitor reads for step, loss and time left. Runs on CPU (gloo) with no
download: the model is built from ``tiny-llama/config.json`` with random weights, the data is
random tokens.
"""

import os
import sys
import time
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, HfArgumentParser, Trainer,
                          TrainerCallback, TrainingArguments)

HERE = Path(__file__).resolve().parent


class RandomTokens(torch.utils.data.Dataset):
    """Random token sequences (labels = inputs: a causal LM learns the token distribution)."""

    def __init__(self, n: int, seq_len: int, vocab: int) -> None:
        gen = torch.Generator().manual_seed(0)
        # a skewed distribution, so the loss visibly falls from ln(vocab)
        weights = torch.arange(vocab, 0, -1, dtype=torch.float) ** 2
        self.data = torch.multinomial(weights, n * seq_len, replacement=True,
                                      generator=gen).view(n, seq_len)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        ids = self.data[i]
        return {"input_ids": ids, "labels": ids.clone()}


class Pause(TrainerCallback):
    """Wait after every step (``--step_sleep``), so a demo run lasts long enough to watch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(self.seconds)


def plan_defaults(argv: list[str]) -> list[str]:
    """HF Trainer arguments for what the command line leaves out, from trainwiz's plan."""
    env = os.environ
    defaults = {
        "--output_dir": os.path.join(env.get("TRAINWIZ_RUN_DIR", "."), "hf-out"),
        "--per_device_train_batch_size": env.get("TRAINWIZ_BATCH_SIZE", "4"),
        "--gradient_accumulation_steps": env.get("TRAINWIZ_GRAD_ACCUM", "1"),
        "--gradient_checkpointing": env.get("TRAINWIZ_ACTIVATION_CHECKPOINTING", "false"),
        "--bf16": env.get("TRAINWIZ_BF16", "false"),
        "--max_steps": env.get("TRAINWIZ_STEPS", "40"),
        "--logging_steps": "5",
        "--learning_rate": "3e-3",
        "--save_strategy": "no",
        "--report_to": "none",
        "--use_cpu": "true" if not torch.cuda.is_available() else "false",
        "--dataloader_num_workers": "0",
    }
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    extra = [x for k, v in defaults.items() if k not in given for x in (k, v)]
    return extra + argv


def main() -> None:
    argv = plan_defaults(sys.argv[1:])
    own = {"--seq_len": os.environ.get("TRAINWIZ_SEQ_LEN", "64"), "--step_sleep": "0"}
    for name in own:  # this script's own arguments, not the Trainer's
        if name in argv:
            i = argv.index(name)
            own[name] = argv[i + 1]
            del argv[i:i + 2]
    seq_len, step_sleep = int(own["--seq_len"]), float(own["--step_sleep"])
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(argv)
    model_path = os.environ.get("TRAINWIZ_MODEL") or str(HERE / "tiny-llama")
    if model_path.endswith("config.json"):
        model_path = os.path.dirname(model_path)
    config = AutoConfig.from_pretrained(model_path)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    data = RandomTokens(512, seq_len, config.vocab_size)
    rank = int(os.environ.get("RANK", "0"))
    plan = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("TRAINWIZ_")
                    and k not in ("TRAINWIZ_RUN_ID", "TRAINWIZ_RUN_DIR"))
    print(f"rank {rank} sees the plan: {plan or '(none: not started by trainwiz)'}", flush=True)
    if rank == 0:
        print(f"model {model_path}: {sum(p.numel() for p in model.parameters()):,} parameters; "
              f"batch {args.per_device_train_batch_size} x seq {seq_len}, "
              f"{args.max_steps} steps", flush=True)
    callbacks = [Pause(step_sleep)] if step_sleep > 0 else []
    Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks).train()


if __name__ == "__main__":
    main()
