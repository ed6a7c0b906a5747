"""The command line: fast help, and one-line errors with exit code 2 and nothing written."""

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from nasq.cli import main
from nasq.config import config_from_dict
from nasq.hardware_profiles import load_profile
from nasq.search.run_dir import RUN_MARKER

NASQ = [sys.executable, "-m", "nasq.cli"]


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run(*args, cwd=None, env=None) -> Ran:
    """`nasq ARGS` in this process (a subprocess costs seconds of imports per call), with the exit code and the
    output captured; ``env`` replaces the environment for the call. test_run_as_a_process_exits_as_in_process
    checks that a real process exits and prints the same."""
    out, err = io.StringIO(), io.StringIO()
    cwd_before, env_before = os.getcwd(), dict(os.environ)
    try:
        if cwd is not None:
            os.chdir(cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's refusals
                code = exc.code
    finally:
        os.chdir(cwd_before)
        os.environ.clear()
        os.environ.update(env_before)
    return Ran(code, out.getvalue(), err.getvalue())


def run_process(*args, cwd=None, env=None):
    return subprocess.run([*NASQ, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_run_as_a_process_exits_as_in_process(tmp_path):
    for args in (["search"], ["best", "x", "--max-latency-ms", "-1"], ["search", tmp_path / "none.yaml"]):
        real, here = run_process(*args), run(*args)
        assert real.returncode == here.returncode == 2 and real.stderr == here.stderr and real.stdout == here.stdout


def test_help_is_fast_and_imports_nothing_heavy():
    exe = Path(sys.executable).parent / "nasq"
    cmd = [str(exe)] if exe.exists() else NASQ
    start = time.perf_counter()
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0 and "search" in out.stdout and "profile" in out.stdout
    assert elapsed < 2.0, elapsed
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, nasq.cli; nasq.cli.build_parser();"
            "print(sorted(m for m in ('torch', 'ray', 'onnxruntime', 'optuna', 'numpy') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "[]"


def test_a_typo_in_a_config_or_run_is_said_before_ray_or_torch_load(tmp_path):
    (tmp_path / "c.yaml").write_text("serch: {}\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RUN_MARKER).write_text('{"nasq_version": "0.1.0", "config": {"serch": 1}, "profiles": {}}')
    for args in (["search", "c.yaml"], ["search", "--resume", "run"], ["best", "run", "--target", "t", "--out", "o"]):
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, nasq.cli; code = nasq.cli.main({args!r});"
                "print(code, sorted(m for m in ('torch', 'ray', 'onnxruntime', 'optuna') if m in sys.modules))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert probe.stdout.strip() == "2 []" and "unknown key 'serch'" in probe.stderr, (args, probe.stderr)


def test_targets_lists_shipped_profiles_and_marks_those_of_this_machine(tmp_path):
    from conftest import write_profile

    from nasq.hardware_profiles.machine import describe, this_machine

    out = run("targets")
    assert out.returncode == 0
    for name in ("xeon-avx512-ort", "epyc-zen2-avx2-ort", "bitserial-sim"):
        assert name in out.stdout
    assert "onnxruntime" in out.stdout and f"this machine: {describe(this_machine())}" in out.stdout
    assert "local-ort: " in out.stdout
    mine = write_profile(tmp_path / "mine.json")
    marked = run("targets", env={**os.environ, "NASQ_PROFILE_PATH": str(tmp_path)})
    assert "mine [this machine]" in marked.stdout and f"local-ort: mine ({mine})" in marked.stdout
    # the shipped ONNX Runtime profile: which predictor prices ONNX models, and its calibration for them
    assert "ONNX models (nasq predict): the " in out.stdout and "its calibration of ONNX models' prices (" in out.stdout
    # chosen on its block networks, each priced by a fit that did not see it; the real topologies held out
    assert "predictor, chosen on block networks (priced by '" in out.stdout and "held out from its choice" in out.stdout


def assert_clean_error(out, fragment):
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nasq: error:"), out.stderr
    assert fragment in lines[0]
    assert "Traceback" not in out.stderr


def write_config(tmp_path, **overrides):
    raw = {"output_dir": str(tmp_path / "runs"), **overrides}
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path


def test_binary_files_as_config_profile_or_stray_profile_are_refused_in_one_line(tmp_path):
    junk = bytes(range(256)) * 4
    (tmp_path / "c.yaml").write_bytes(junk)
    assert_clean_error(run("search", tmp_path / "c.yaml"), "config '")
    (tmp_path / "junk.json").write_bytes(junk)
    out = run("search", write_config(tmp_path, targets=[str(tmp_path / "junk.json")]))
    assert_clean_error(out, "is not a text file")
    assert not (tmp_path / "runs").exists()
    listing = run("targets", env={**os.environ, "NASQ_PROFILE_PATH": str(tmp_path)})
    assert listing.returncode == 0 and "bitserial-sim" in listing.stdout, listing.stderr  # the rest still listed
    assert "junk: unusable (profile '" in listing.stdout and "Traceback" not in listing.stderr


def test_resume_of_a_run_it_cannot_resume_says_why_and_leaves_it_as_it_was(fake_run):
    before = sorted(p.name for p in fake_run.iterdir())
    assert_clean_error(run("search", "--resume", fake_run), "has no Ray Tune state to resume")
    assert sorted(p.name for p in fake_run.iterdir()) == before  # no lock file left behind
    marker = json.loads((fake_run / RUN_MARKER).read_text())
    del marker["nasq_version"]
    (fake_run / RUN_MARKER).write_text(json.dumps(marker))
    assert_clean_error(run("search", "--resume", fake_run), "names no nasq_version")
    (fake_run / RUN_MARKER).write_bytes(b"\xff\xfe\x00")
    assert_clean_error(run("search", "--resume", fake_run), "is not a text file")


def test_unreachable_cluster_fails_fast_and_writes_nothing(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    out = run("search", write_config(tmp_path), "--address", f"127.0.0.1:{port}")
    assert_clean_error(out, "cannot reach the Ray cluster")
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "runs").exists()
    assert_clean_error(run("search", write_config(tmp_path), "--address", "nowhere"), "must be HOST:PORT")


def test_search_argument_errors(tmp_path):
    assert_clean_error(run("search"), "give either a CONFIG")
    assert_clean_error(run("search", tmp_path / "none.yaml"), "cannot read config")
    assert_clean_error(run("search", "--resume", tmp_path), "not a nasq run directory")


@pytest.fixture
def fake_run(tmp_path):
    """A run directory as the driver writes it (marker + one results row), without searching."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = config_from_dict({"targets": ["xeon-avx512-ort"]})
    marker = {
        "nasq_version": "0.1.0",
        "created": "2026",
        "config": cfg.to_dict(),
        "profiles": {"xeon-avx512-ort": load_profile("xeon-avx512-ort").data},
    }
    (run_dir / RUN_MARKER).write_text(json.dumps(marker))
    from nasq.spaces import candidate_id, canonical_key, create_space

    cand = create_space("mobilenet-mnist").sample(0)
    row = {
        "cid": candidate_id(cand),
        "key": canonical_key(cand),
        "status": "ok",
        "reason": "",
        "score": 0.9,
        "accuracy": 0.9,
        "latency_ms": {"xeon-avx512-ort": 0.05},
    }
    (run_dir / "results.jsonl").write_text(json.dumps(row) + "\n")
    return run_dir


def test_profile_errors(tmp_path):
    assert_clean_error(run("profile", "--backend", "cuda", "--name", "x"), "unknown profiler backend 'cuda'")
    assert_clean_error(run("profile", "--backend", "onnxruntime", "--name", "../x"), "profile name '../x' not allowed")
    assert_clean_error(
        run("profile", "--backend", "onnxruntime", "--name", "x", "--space", "nope"), "unknown search space"
    )
    (tmp_path / "file").write_text("")
    assert_clean_error(
        run("profile", "--backend", "bitserial-sim", "--name", "x", "--out", tmp_path / "file" / "x.json"),
        "cannot be created",
    )
    assert_clean_error(run("profile", "calibrate"), "profile calibrate needs --target NAME")
    assert_clean_error(
        run("profile", "calibrate", "--target", "bitserial-sim"),
        "target 'bitserial-sim' has no measured ONNX Runtime kernel costs",
    )
    assert_clean_error(
        run("profile", "calibrate", "--target", "xeon-avx512-ort", "--networks", "3"), "needs --networks of at least 5"
    )


def test_profile_writes_a_loadable_profile(tmp_path):
    out = run("profile", "--backend", "bitserial-sim", "--name", "acc", "--out", tmp_path / "acc.json")
    assert out.returncode == 0, out.stderr
    assert load_profile(str(tmp_path / "acc.json")).predictor == "bitserial"
    assert [p.name for p in tmp_path.iterdir()] == ["acc.json"]  # no temp files left


def test_search_warns_about_a_profile_from_another_machine(tmp_path):
    """One warning line before anything else, naming both machines and how to profile this one."""
    from conftest import write_profile

    target = write_profile(
        tmp_path / "elsewhere.json",
        {"device": "Cortex-A72", "cpu_id": None, "machine": "aarch64", "cpu_flags": ["neon", "asimd"]},
    )
    out = run("search", write_config(tmp_path, targets=[target]), "--address", "nowhere")  # stops right after
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith(f"warning: target '{target}' was measured on Cortex-A72 (neon asimd)")
    assert "and this machine is" in lines[0] and "nasq profile --backend onnxruntime --name NAME" in lines[0]
    assert lines[-1].startswith("nasq: error:")


def test_local_ort_that_cannot_be_stored_fails_before_anything_is_measured_or_written(tmp_path):
    """No profile of this machine for the space, and a profile store that cannot hold one: one line, exit 2."""
    (tmp_path / "file").write_text("")
    config = write_config(tmp_path, space="nas-bench-201", targets=["local-ort"])  # no shipped profile prices it
    out = run("search", config, env={**os.environ, "NASQ_PROFILE_STORE": str(tmp_path / "file" / "store")})
    assert_clean_error(out, "target 'local-ort': no profile of this machine yet, and the profile store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "file"]


def test_a_second_driver_on_a_run_directory_in_use_is_refused(fake_run):
    from nasq.fileio import RunLock

    with RunLock(fake_run):  # as a running driver holds it
        out = run("search", "--resume", fake_run)
        assert_clean_error(out, "is in use by another nasq driver")
        assert f"pid {__import__('os').getpid()}" in out.stderr  # names the holder
    with RunLock(fake_run):  # released when the holder lets go (or dies: the kernel drops flocks)
        pass


def test_a_local_ray_that_misses_its_startup_window_is_started_again_then_named(monkeypatch):
    """Ray gives its raylet a fixed 30 s to register and raises a bare Exception when a starved machine
    misses it: the driver starts it again, and after the last attempt says so in one line."""
    import ray

    from nasq.errors import NasqError
    from nasq.search import driver

    calls = []

    def init(**kwargs):
        calls.append("init")
        if calls.count("init") < 3:
            raise Exception("The current node timed out during startup. This could happen because ...")

    monkeypatch.setenv("RAY_worker_niceness", "0")  # what _init_ray sets: restored after the test
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    driver._init_ray(None)
    assert calls == ["init", "shutdown", "init", "shutdown", "init"]
    calls.clear()
    monkeypatch.setattr(driver, "LOCAL_RAY_ATTEMPTS", 2)
    with pytest.raises(NasqError, match="did not start \\(2 attempts\\)"):
        driver._init_ray(None)
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(Exception("something else")))
    with pytest.raises(Exception, match="something else"):
        driver._init_ray(None)


def test_a_model_that_does_not_fit_its_data_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n"
        "def five_classes():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))\n"
    )
    model = {"factory": f"{tmp_path / 'nets.py'}:five_classes", "input_shape": [1, 28, 28]}
    for data, fragment in (
        ({}, "the model gives 5 outputs, but data mnist-5k has 10 classes"),
        ({"dataset": "digits"}, "the data's samples are [1, 8, 8], but the model takes input shape [1, 28, 28]"),
    ):
        out = run("search", write_config(tmp_path, targets=["bitserial-sim"], model=model, data=data), cwd=tmp_path)
        assert_clean_error(out, fragment)
        assert not (tmp_path / "runs").exists()
    out = run(
        "search", write_config(tmp_path, targets=["bitserial-sim"], model={**model, "weights": "none.pt"}), cwd=tmp_path
    )
    assert_clean_error(out, "none.pt: no such file")
