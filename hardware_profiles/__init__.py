"""What the hardware costs: versioned JSON profiles, the predictors built from them, the profilers
that measure them.

A target named in a config is a profile: ``hardware_profiles/<name>.json`` (or a path to a JSON
file), or ``local-ort``, this machine's ONNX Runtime profile (found or measured: ``local.py``). Profiles are data (no pickle), with units in field names and metadata on how they were made.

Example:
    >>> from nasq.hardware_profiles import load_profile, create_predictor    # doctest: +SKIP
    >>> predictor = create_predictor(load_profile("local-ort"))               # doctest: +SKIP
    >>> predictor.predict(space.layers(candidate)).total_ms                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from nasq.errors import NasqError
from nasq.hardware_profiles import registries
from nasq.hardware_profiles.profile import Profile
from nasq.hardware_profiles.registries import PREDICTORS, PROFILE_DIR, PROFILERS, PUBLISHED_DIR


def profile_dirs() -> list[Path]:
    """Where profile names are looked up: ``$NASQ_PROFILE_PATH`` (os.pathsep-separated), the profile store
    (where ``local-ort`` profiles are kept, :func:`nasq.hardware_profiles.local.store_dir`), then the shipped
    ``hardware_profiles/`` folder and its ``published/`` profiles (fitted from public tables)."""
    from nasq.hardware_profiles.local import store_dir

    extra = [Path(p) for p in os.environ.get("NASQ_PROFILE_PATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(extra + [store_dir(), registries.PROFILE_DIR, registries.PUBLISHED_DIR]))


def list_profiles() -> list[str]:
    names: set[str] = set()
    for folder in profile_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.json"))
    return sorted(names)


def resolve_profile_path(target: str, space: str | None = None) -> Path:
    """The file a target names: a path, a profile name, or ``local-ort`` (this machine's ONNX Runtime profile
    for ``space``, None: any; measured first where there is none: :mod:`nasq.hardware_profiles.local`)."""
    from nasq.hardware_profiles.local import LOCAL_ORT, local_profile_path

    if target == LOCAL_ORT:
        return local_profile_path(space)
    if target.endswith(".json") or os.sep in target:
        path = Path(target)
        if not path.is_file():
            raise NasqError(f"profile file '{target}' does not exist")
        return path
    for folder in profile_dirs():
        path = folder / f"{target}.json"
        if path.is_file():
            return path
    raise NasqError(f"unknown target '{target}'; available: {', '.join([LOCAL_ORT, *list_profiles()])}")


def load_profile(target: str, space: str | None = None) -> Profile:
    """Load and validate a profile by name or path (see :func:`resolve_profile_path`); NasqError on any problem."""
    return Profile.load(resolve_profile_path(target, space))


def create_predictor(profile: Profile):
    return PREDICTORS.get(profile.predictor)(profile)


def predictors_for(profiles: dict[str, dict]) -> dict:
    """Target name -> latency predictor, from profiles' data as a run directory's marker holds them."""
    return {t: create_predictor(Profile.from_dict(d, t)) for t, d in profiles.items()}


__all__ = [
    "PREDICTORS",
    "PROFILERS",
    "PROFILE_DIR",
    "PUBLISHED_DIR",
    "Profile",
    "create_predictor",
    "list_profiles",
    "load_profile",
    "predictors_for",
    "profile_dirs",
    "resolve_profile_path",
]
