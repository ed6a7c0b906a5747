"""Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this folder on
``sys.path``): where things are, and writing one section of docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # public benchmark tables (see its README)


def write_section(path: Path, section: str, title: str) -> None:
    """Replace (or append) the section titled ``title``, atomically."""
    from nasq.fileio import write_text_atomic

    old = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nEvery figure here comes from a script in `benchmarks/`.\n\n"
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: section, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(exist_ok=True)
    write_text_atomic(path, new)


def publish(text: str, title: str, *, write: bool) -> None:
    """Print a section and, unless ``write`` is false, put it into docs/benchmarks.md."""
    print(text)
    if write:
        write_section(ROOT / "docs" / "benchmarks.md", text, title)
