"""The ``local-ort`` target: this machine's ONNX Runtime profile, found where profiles are kept, or measured.

A config or command that names ``local-ort`` gets a profile measured on a machine like this one (the same CPU
and kernel-deciding flags, :mod:`nasq.hardware_profiles.machine`), with the ONNX Runtime installed here, one
thread, batch 1, for the search space at hand. nasq looks in ``$NASQ_PROFILE_PATH``, then in the profile store
(``$NASQ_PROFILE_STORE``, default ``~/.local/share/nasq/profiles``), then among the shipped profiles; where none
matches, it measures one (``nasq profile --quick``), stores it, and says so. Later runs find it there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

from nasq.errors import NasqError
from nasq.hardware_profiles.machine import describe, machine_difference, this_machine

LOCAL_ORT = "local-ort"
DEFAULT_SPACE = "mobilenet-mnist"
THREADS, BATCH = 1, 1


def store_dir() -> Path:
    """Where measured local profiles are kept: ``$NASQ_PROFILE_STORE``, else ``$XDG_DATA_HOME/nasq/profiles``
    (``~/.local/share/nasq/profiles``)."""
    if os.environ.get("NASQ_PROFILE_STORE"):
        return Path(os.environ["NASQ_PROFILE_STORE"])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "nasq" / "profiles"


def ort_version() -> str | None:
    try:
        return _metadata.version("onnxruntime")
    except _metadata.PackageNotFoundError:
        return None


def space_key(space) -> str | None:
    """The name a local profile records for the space it covers: a registered space's name, or a space instance's
    own (a trained model's space is named after the model and its layer shapes)."""
    return space if space is None or isinstance(space, str) else space.name


def wanted(space) -> dict[str, Any]:
    """What a local profile must have been measured with: this machine, this ONNX Runtime, one thread, batch 1,
    ``space``'s layers (None: any space, for pricing ONNX models)."""
    return {
        "machine": this_machine(),
        "runtime_version": ort_version(),
        "threads": THREADS,
        "batch_size": BATCH,
        "space": space_key(space),
    }


def mismatch(metadata: dict, want: dict) -> str | None:
    """Why a profile's ``metadata`` is not a local profile as ``want`` says, or None when it is one."""
    if metadata.get("runtime") != "onnxruntime" or metadata.get("rpc") or metadata.get("tracker"):
        return "not measured with ONNX Runtime on a CPU"
    difference = machine_difference(metadata, want["machine"])
    if difference:
        return f"measured on {describe(metadata)}: {difference}"
    for key in ("runtime_version", "threads", "batch_size", "space"):
        if want[key] is not None and metadata.get(key) != want[key]:
            return f"measured with {key} {metadata.get(key)!r}, not {want[key]!r}"
    return None


def _candidates() -> list[tuple[Path, dict]]:
    """Profile files with their metadata, by priority: the user's folders and the store before the shipped ones."""
    from nasq.hardware_profiles import registries

    folders = [Path(p) for p in os.environ.get("NASQ_PROFILE_PATH", "").split(os.pathsep) if p]
    folders += [store_dir(), registries.PROFILE_DIR]
    out = []
    for folder in dict.fromkeys(folders):
        if folder.is_dir():
            # within a folder: full profiles before quick ones, then the newest
            found = []
            for path in folder.glob("*.json"):
                meta = _metadata_of(path)
                if meta is not None:
                    found.append((path, meta))
            found.sort(key=lambda t: str(t[1].get("date", "")), reverse=True)
            found.sort(key=lambda t: bool(t[1].get("quick")))
            out += found
    return out


def _metadata_of(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable files are `nasq targets`' to report, not a reason to fail here
    meta = data.get("metadata") if isinstance(data, dict) else None
    return meta if isinstance(meta, dict) else None


def find_local_profile(space=DEFAULT_SPACE) -> Path | None:
    """The file of the best profile of this machine for ``space`` (None: any space), or None."""
    want = wanted(space)
    if want["runtime_version"] is None:
        return None
    return next((path for path, meta in _candidates() if mismatch(meta, want) is None), None)


def local_file_name(want: dict, quick: bool) -> str:
    """'local-ort-amd-epyc-3f2a19c0[-quick].json': the machine's name and a digest of everything it must match."""
    machine = want["machine"]
    slug = re.sub(r"[^a-z0-9]+", "-", machine["device"].lower()).strip("-")[:40] or "cpu"
    digest = hashlib.sha1(
        json.dumps(
            {**want, "machine": {k: machine[k] for k in ("device", "cpu_id", "cpu_flags")}}, sort_keys=True
        ).encode()
    ).hexdigest()[:8]
    return f"{LOCAL_ORT}-{slug}-{digest}{'-quick' if quick else ''}.json"


def check_local_target(space) -> None:
    """NasqError, before anything is measured, when ``local-ort`` can neither be found nor built here."""
    if find_local_profile(space) is not None:
        return
    _buildable(space)


def _buildable(space) -> Path:
    from nasq.spaces import SPACES

    if ort_version() is None:
        raise NasqError(
            f"target '{LOCAL_ORT}': ONNX Runtime is not installed, so this machine cannot be profiled; "
            "install onnxruntime or name another target"
        )
    if isinstance(space, str) and space not in SPACES:
        raise NasqError(f"target '{LOCAL_ORT}': unknown space '{space}'; available: {', '.join(SPACES.names())}")
    store = store_dir()
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(store, exc.strerror or str(exc)) from None
    if not store.is_dir() or not os.access(store, os.W_OK):
        raise _unwritable(store, "not a writable directory")
    return store


def _unwritable(store: Path, why: str) -> NasqError:
    return NasqError(
        f"target '{LOCAL_ORT}': no profile of this machine yet, and the profile store '{store}' cannot "
        f"hold one ({why}); set NASQ_PROFILE_STORE to a writable folder"
    )


def local_profile_path(
    space=DEFAULT_SPACE, *, log: Callable[[str], None] | None = None, options: dict | None = None
) -> Path:
    """The profile file ``local-ort`` stands for: found (see :func:`find_local_profile`), else measured now with
    ``nasq profile --quick`` (``options``: the profiler's own), stored, and said so on ``log`` (default: standard
    error, so that a command's own output stays clean)."""
    found = find_local_profile(space)
    if found is not None:
        return found
    return measure_local_profile(space or DEFAULT_SPACE, quick=True, log=log, options=options, unless_found=True)


def measure_local_profile(
    space=DEFAULT_SPACE,
    *,
    quick: bool,
    log: Callable[[str], None] | None = None,
    options: dict | None = None,
    unless_found: bool = False,
) -> Path:
    """Measure this machine's ONNX Runtime profile for ``space`` into the store (``nasq profile --local``, or
    ``local-ort`` where none is found: then ``unless_found``, since another nasq may have measured it meanwhile);
    one measurement of this machine at a time. ``space``: a registered space's name, or a space. Returns the file."""
    from nasq.fileio import FileLock

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    store = _buildable(space)
    with FileLock(store / f".{LOCAL_ORT}.lock"):
        found = find_local_profile(space) if unless_found else None
        if found is not None:
            return found
        return _measure(space, store / local_file_name(wanted(space), quick), quick, log, options or {})


def _measure(space, path: Path, quick: bool, log: Callable[[str], None], options: dict) -> Path:
    from nasq.fileio import write_json_atomic
    from nasq.hardware_profiles.profile import Profile
    from nasq.hardware_profiles.registries import PROFILERS
    from nasq.spaces import create_space

    space = create_space(space) if isinstance(space, str) else space
    space_name = space.name
    log(
        f"{LOCAL_ORT}: measuring an ONNX Runtime {ort_version()} profile of this machine ({describe(this_machine())}) "
        f"for '{space_name}', as `nasq profile --backend onnxruntime{' --quick' if quick else ''}` does"
    )
    start = time.time()
    try:
        backend = PROFILERS.create("onnxruntime", threads=THREADS, batch_size=BATCH, **options)
        shapes = space.profile_shapes(quick=quick and backend.capabilities.quick_shapes)
        data = backend.profile(shapes, name=path.stem, space=space.name, quick=quick, log=lambda msg: log(f"  {msg}"))
        Profile.from_dict(data, str(path))
    except NasqError:
        raise
    except Exception as exc:  # the runtime failed on this machine: say so in one line, write nothing
        raise NasqError(
            f"target '{LOCAL_ORT}': ONNX Runtime could not profile this machine: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        ) from None
    write_json_atomic(path, data)
    log(
        f"{LOCAL_ORT}: profiled this machine in {time.time() - start:.0f} s and stored {path}; later runs use it "
        f"(`nasq profile validate --target {LOCAL_ORT}` checks it against whole networks)"
    )
    return path
