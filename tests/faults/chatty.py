"""A rank that writes a lot to stdout and stderr (no torch: starts fast). Used by the fault
tests: ``chatty.py STEPS SLEEP [--marker FILE]``; rank 0 touches FILE after each step."""

import logging
import os
import sys
import time

logging.basicConfig(level=logging.INFO, format="%(message)s")
steps, pause = int(sys.argv[1]), float(sys.argv[2])
rank = os.environ.get("RANK")
for step in range(steps):
    print(f"rank {rank} out {step} " + "x" * 4000)
    logging.info(f"rank {rank} err {step} " + "y" * 4000)
    time.sleep(pause)
print(f"rank {rank} done after {steps} steps")
