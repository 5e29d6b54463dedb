"""The memory and time estimator: pure Python, no torch, no UI, no NVML.

This package's ``__init__`` imports nothing, so a caller that needs only the vocabularies
(``types``: the choice lists the CLI's options and the profile schema offer) pays for nothing
else. The front doors, each imported from its module:

    trainwiz.estimator.catalog   resolve_model(spec) -> ModelSpec     catalog name, HF folder, config.json
                                 model_from_params(n) -> ModelSpec    a bare parameter count
    trainwiz.estimator.fit       estimate(model, config, gpu_memory=None, gpu_free=None,
                                          suggestions=True) -> Estimate
    trainwiz.estimator.timing    time_hardware(gpus, topology=None, network=None) -> TimeHardware
                                 time_plan(est, hardware, tokens=None, steps=None,
                                           available_gpus=None) -> (TimeEstimate, suggestions)
                                 summary_lines(time, fits) -> list[str]
    trainwiz.estimator.types     TrainConfig, ModelSpec, Estimate, MemoryBreakdown, Suggestion,
                                 the choice lists (PRECISIONS, LOOPS, STRATEGIES, ...) and VERDICTS

Inside: memory.py (the memory model), activations.py, adapters.py (LoRA/QLoRA), suggest.py,
accelerate_rule.py, gpu_facts.py (data sheets).
"""
