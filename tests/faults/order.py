"""Alternates print (stdout) and logging (stderr), as a training script with HF-style logging."""

import logging
import warnings

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
for i in range(4):
    print(f"print {i}")
    logging.info(f"logging {i}")
warnings.warn("a warning between")
print("print last")
