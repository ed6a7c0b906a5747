"""A run directory's marker, read without importing Ray, torch or the driver: `nasq best` and `--resume` check
the run (and its config) before anything heavy loads."""

from __future__ import annotations

import json
from pathlib import Path

from nasq.config import ExperimentConfig, config_from_dict
from nasq.errors import NasqError
from nasq.fileio import read_text

RUN_MARKER = "nasq_run.json"
TUNE_DIR = "tune"


def load_run(run_dir: Path | str) -> tuple[Path, dict, ExperimentConfig]:
    """Read and check a run directory's marker; NasqError if it is not a nasq run."""
    run_dir = Path(run_dir)
    marker_path = run_dir / RUN_MARKER
    if not run_dir.is_dir():
        raise NasqError(f"run directory '{run_dir}' does not exist")
    if not marker_path.is_file():
        raise NasqError(f"'{run_dir}' is not a nasq run directory (no {RUN_MARKER})")
    try:
        marker = json.loads(read_text(marker_path, "run marker"))
        cfg = config_from_dict(marker["config"], str(marker_path))
        if not isinstance(marker.get("profiles"), dict):
            raise KeyError("profiles")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise NasqError(f"'{marker_path}' is corrupt ({type(exc).__name__}: {exc})") from None
    return run_dir.resolve(), marker, cfg
