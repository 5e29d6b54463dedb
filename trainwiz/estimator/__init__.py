"""The memory estimator: pure Python, no torch, no UI, no NVML.

Public API (stable; the CLI, the plain wizard and the app use only this):

    resolve_model(spec: str) -> ModelSpec          # catalog name, HF folder, config.json
    model_from_params(n: int) -> ModelSpec         # bare parameter count
    estimate(model, config, gpu_memory=None, gpu_free=None, suggestions=True) -> Estimate

The time model (trainwiz.estimator.timing; the wizard's panel and the CLI use these):

    time_hardware(gpus, topology=None, network=None) -> TimeHardware   # GpuInfo list or dicts
    time_plan(est, hardware, tokens=None, steps=None, available_gpus=None)
        -> (TimeEstimate, tuple[TimedSuggestion, ...])  # the config's time; fitting changes, fastest first
    summary_lines(time, fits) -> list[str]            # "time: ~5,590 tokens/s ...", "to train ...: about 5 h"
"""

from trainwiz.estimator.catalog import model_from_params, resolve_model
from trainwiz.estimator.fit import estimate
from trainwiz.estimator.timing import summary_lines, time_hardware, time_plan
from trainwiz.estimator.types import (
    Estimate,
    MemoryBreakdown,
    ModelSpec,
    Suggestion,
    TrainConfig,
)

__all__ = [
    "Estimate",
    "MemoryBreakdown",
    "ModelSpec",
    "Suggestion",
    "TrainConfig",
    "estimate",
    "model_from_params",
    "resolve_model",
    "summary_lines",
    "time_hardware",
    "time_plan",
]
