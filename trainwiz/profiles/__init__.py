"""Profiles: the schema, validation, YAML files and the store. Pure: no UI, NVML or torch.

Public API (others code against these names):

    Profile, FsdpOptions, EstimateInputs            # the dataclasses (trainwiz.profiles.schema)
    ProfileError                                    # TrainwizError naming file, line, key
    profile_from_dict(data, *, source, name) -> Profile      # validates
    profile_to_dict(profile) -> dict                # defaults left out, `version` always written
    validate_profile(profile) -> Profile            # check one built in code
    check_profile_gpus(profile, gpu_count)          # GPU ids / counts this box cannot provide
    load_profile(name_or_path, *, cwd=None) -> Profile
    save_profile(profile, *, scope="user", force=False, path=None, cwd=None) -> Path
    ProfileStore(cwd=None).list() / .remove(name) / .copy(name, new, force=False)
    to_accelerate_config(profile, num_gpus=None) -> dict
    from_accelerate_config(data, *, name, source, warnings=None) -> Profile
    accelerate_default_config_path() -> Path
    estimate_request(profile, num_gpus=None) -> (model, TrainConfig) | None
    time_request(profile) -> {"tokens"|"steps": N, "network": bytes/s}   # for the time estimate
    profile_time(profile, est, gpus, topology=None) -> (TimeEstimate, timed suggestions)
"""

from trainwiz.profiles.accelerate_io import (
    accelerate_config_text,
    accelerate_default_config_path,
    accelerate_export_notes,
    from_accelerate_config,
    is_accelerate_config,
    to_accelerate_config,
)
from trainwiz.profiles.estimator_inputs import (
    estimate_notes,
    estimate_request,
    profile_time,
    time_request,
)
from trainwiz.profiles.schema import (
    EstimateInputs,
    FsdpOptions,
    LoraOptions,
    PlannedHardware,
    Profile,
    QuantizationOptions,
)
from trainwiz.profiles.store import (
    ProfileEntry,
    ProfileStore,
    find_profile,
    load_profile,
    project_profile_dirs,
    project_save_dir,
    read_profile_file,
    resolve_profile_path,
    save_profile,
    user_profiles_dir,
)
from trainwiz.profiles.validate import (
    Problem,
    ProfileError,
    ProfileExistsError,
    check_profile_gpus,
    profile_from_dict,
    profile_to_dict,
    validate_profile,
)

__all__ = [
    "accelerate_config_text", "accelerate_default_config_path", "accelerate_export_notes",
    "from_accelerate_config", "is_accelerate_config", "to_accelerate_config",
    "estimate_notes", "estimate_request", "profile_time", "time_request",
    "EstimateInputs", "FsdpOptions", "LoraOptions", "QuantizationOptions", "PlannedHardware", "Problem", "Profile",
    "ProfileEntry", "ProfileError",
    "ProfileExistsError",
    "ProfileStore", "check_profile_gpus", "find_profile", "load_profile", "profile_from_dict",
    "profile_to_dict", "project_profile_dirs", "project_save_dir", "read_profile_file",
    "resolve_profile_path", "save_profile", "user_profiles_dir", "validate_profile",
]
