"""The memory estimator: pure Python, no torch, no UI, no NVML.

Public API (stable; the CLI, the plain wizard and the app use only this):

    resolve_model(spec: str) -> ModelSpec          # catalog name, HF folder, config.json
    model_from_params(n: int) -> ModelSpec         # bare parameter count
    estimate(model, config, gpu_memory=None, gpu_free=None, suggestions=True) -> Estimate
"""

from trainwiz.estimator.types import (
    Estimate,
    MemoryBreakdown,
    ModelSpec,
    Suggestion,
    TrainConfig,
)

__all__ = ["Estimate", "MemoryBreakdown", "ModelSpec", "Suggestion", "TrainConfig",
           "estimate", "model_from_params", "resolve_model"]


def __getattr__(name):  # lazy: keep `import trainwiz.estimator` cheap
    if name == "estimate":
        from trainwiz.estimator.fit import estimate
        return estimate
    if name in ("resolve_model", "model_from_params"):
        from trainwiz.estimator import models
        return getattr(models, name)
    raise AttributeError(name)
