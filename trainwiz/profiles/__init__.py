"""Profiles: the schema, validation, YAML files and the store. Pure: no UI, NVML or torch."""

from trainwiz.profiles.schema import EstimateInputs, FsdpOptions, Profile

__all__ = ["EstimateInputs", "FsdpOptions", "Profile"]
