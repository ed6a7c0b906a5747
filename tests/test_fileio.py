"""Results put in place whole: a staged folder is renamed into place, or moved file by file into a folder that
holds other files, with the completing file last; what a killed process staged is removed by the next."""

import os
import subprocess
import sys

import pytest

from nasq.fileio import StagedDir


def test_a_staged_folder_appears_whole_and_a_failed_one_leaves_nothing(tmp_path):
    final = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), StagedDir(final, "report.json") as stage:
        (stage.path / "model.onnx").write_bytes(b"x")
        raise RuntimeError("killed by the test")
    assert list(tmp_path.iterdir()) == []  # not the staging folder, nor the parent made for it
    with StagedDir(final, "report.json") as stage:
        (stage.path / "model.onnx").write_bytes(b"x")
        (stage.path / "report.json").write_text("{}")
        assert not final.exists()
        stage.commit()
    assert sorted(p.name for p in final.iterdir()) == ["model.onnx", "report.json"]
    assert [p.name for p in final.parent.iterdir()] == ["out"]


def test_into_a_folder_with_other_files_nothing_is_deleted_and_the_marker_moves_last(tmp_path, monkeypatch):
    final = tmp_path / "out"
    final.mkdir()
    (final / "notes.txt").write_text("mine")
    (final / "report.json").write_text("old")
    order, real = [], os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append(os.path.basename(b)), real(a, b)))
    with StagedDir(final, "report.json") as stage:
        (stage.path / "report.json").write_text("new")
        (stage.path / "model.onnx").write_bytes(b"x")
        stage.commit()
    assert order == ["model.onnx", "report.json"]
    assert (final / "notes.txt").read_text() == "mine" and (final / "report.json").read_text() == "new"


def test_what_a_killed_process_staged_is_removed_by_the_next(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.partial-{dead.stdout.strip()}-abc123"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"x")
    mine = tmp_path / f".out.partial-{os.getpid()}-live"  # a process still running: left alone
    mine.mkdir()
    with StagedDir(tmp_path / "out", "report.json"):
        assert not stale.exists() and mine.exists()
