"""The hardware side's registries and where its shipped profiles live, apart from the package's functions, so
that the modules the package uses can register and look up without importing it."""

from __future__ import annotations

from pathlib import Path

from nasq.registry import Registry

PROFILE_DIR = Path(__file__).resolve().parent
PUBLISHED_DIR = PROFILE_DIR / "published"

#: Latency predictors, by the name a profile's ``predictor`` field gives.
PREDICTORS: Registry = Registry(
    "latency predictor",
    builtin_modules=(
        "nasq.hardware_profiles.predictors",
        "nasq.hardware_profiles.bitserial",
        "nasq.hardware_profiles.published",
    ),
)
#: Profiler backends, by the name ``nasq profile --backend`` takes.
PROFILERS: Registry = Registry(
    "profiler backend",
    builtin_modules=(
        "nasq.hardware_profiles.ort_profiler",
        "nasq.hardware_profiles.bitserial",
        "nasq.hardware_profiles.published",
        "nasq.hardware_profiles.tvm_profiler",
    ),
)
