"""Atomic file writes: a temp file beside the target, then ``os.replace``; never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path | str, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def read_text(path: Path | str, what: str) -> str:
    """A file's text, or NasqError naming ``what`` could not be read and why."""
    from nasq.errors import NasqError

    try:
        return Path(path).read_text()
    except OSError as exc:
        raise NasqError(f"cannot read {what} '{path}': {exc.strerror}") from None


def check_writable_dir(path: Path | str, what: str) -> Path:
    """Create ``path`` if needed and check it is a writable folder; NasqError otherwise."""
    from nasq.errors import NasqError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasqError(f"{what} '{path}' cannot be created: {exc.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise NasqError(f"{what} '{path}' is not a writable directory")
    return path


LOCK_FILE = ".nasq.lock"


class RunLock:
    """An exclusive lock on a run directory, held by the one driver that writes it.

    ``flock`` on ``RUN_DIR/.nasq.lock``: the kernel drops it when the holder dies (even by SIGKILL),
    so a crashed driver never leaves a stale lock for ``--resume`` to trip on. The file names the
    holder (host and pid) for the error a second driver gets.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fh = None

    def __enter__(self) -> "RunLock":
        import fcntl
        import socket

        from nasq.errors import NasqError

        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise NasqError(f"run directory '{self.path.parent}' is in use by another nasq driver ({holder}); "
                            "wait for it to finish or stop it, then --resume") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the flock
            self._fh = None


class FileLock:
    """An exclusive ``flock`` on ``path``, waited for: for work that two nasq processes must not do at once (and
    that the second one then finds done). The kernel drops it when the holder dies."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fh = None

    def __enter__(self) -> "FileLock":
        import fcntl

        self._fh = open(self.path, "a+")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
