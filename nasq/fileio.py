"""Atomic file writes: a temp file beside the target, then ``os.replace``; never half-written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any


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
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NasqError(f"cannot read {what} '{path}': {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise NasqError(
            f"{what} '{path}' is not a text file (byte {exc.start} is not UTF-8); allowed: UTF-8 JSON or YAML"
        ) from None


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


def check_creatable_dir(path: Path | str, what: str) -> Path:
    """Check that ``path`` is, or could be created as, a writable folder, creating nothing (an error later must
    not leave an empty folder behind); NasqError otherwise."""
    from nasq.errors import NasqError

    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NasqError(f"{what} '{path}' cannot be created: '{existing}' is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NasqError(f"{what} '{path}' cannot be created: '{existing}' is not writable")
    return path


class StagedDir:
    """A folder of results filled in private and put in place whole, so that a kill at any moment leaves the
    complete set of files or none of them.

    Files are written under :attr:`path`, a hidden sibling of ``final``; :meth:`commit` renames it to ``final``
    (an empty or missing ``final``: one atomic rename). Into a folder that already holds other files, which are
    never deleted, the files move one at a time with ``last`` moved last, after the old ``last`` is removed: its
    presence marks a complete set. Staging folders left by killed processes are removed on the next start."""

    def __init__(self, final: Path | str, last: str) -> None:
        self.final, self.last = Path(final), last
        parent = self.final.parent
        self._made = []  # folders created for staging, removed again if nothing is committed
        p = parent
        while not p.exists():
            self._made.append(p)
            p = p.parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{self.final.name}.partial-*"):
            pid = stale.name.split("-")[-2] if stale.name.count("-") >= 2 else ""
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.final.name}.partial-{os.getpid()}-"))

    def commit(self) -> Path:
        final = self.final
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        if not final.exists():
            os.rename(self.path, final)
        else:
            (final / self.last).unlink(missing_ok=True)
            for f in sorted(self.path.iterdir(), key=lambda f: f.name == self.last):
                os.replace(f, final / f.name)
            self.path.rmdir()
        self._made = []
        return final

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        for folder in self._made:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                break


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LOCK_FILE = ".nasq.lock"


class RunLock:
    """An exclusive lock on a run directory, held by the one driver that writes it.

    ``flock`` on ``RUN_DIR/.nasq.lock``: the kernel drops it when the holder dies (even by SIGKILL),
    so a crashed driver never leaves a stale lock for ``--resume`` to trip on. The file names the
    holder (host and pid) for the error a second driver gets.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
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
            raise NasqError(
                f"run directory '{self.path.parent}' is in use by another nasq driver ({holder}); "
                "wait for it to finish or stop it, then --resume"
            ) from None
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
        self._fh: IO[str] | None = None

    def __enter__(self) -> FileLock:
        import fcntl

        self._fh = open(self.path, "a+")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
