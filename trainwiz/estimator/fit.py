"""The estimator's front door: the memory of one training step, its verdict, and (when it does
not fit or is tight) the changes that would make it fit.

``model.estimate`` prices one configuration; ``suggest`` prices alternatives with it; this module
sits above both so that neither imports the other's caller.
"""

from __future__ import annotations

from dataclasses import replace

from trainwiz.estimator import memory
from trainwiz.estimator.suggest import suggest
from trainwiz.estimator.types import Estimate, ModelSpec, TrainConfig


def estimate(model: ModelSpec, config: TrainConfig, gpu_memory: int | None = None,
             gpu_free: int | None = None, suggestions: bool = True,
             available_gpus: int | None = None) -> Estimate:
    """Per-GPU memory of one steady-state training step, the fit verdict and suggestions."""
    est = memory.estimate(model, config, gpu_memory, gpu_free)
    if suggestions and est.verdict in ("does not fit", "tight"):
        est = replace(est, suggestions=tuple(
            suggest(model, config, est, gpu_memory, gpu_free, available_gpus)))
    return est
