"""Every command over a corpus of malformed inputs: exit code 2, exactly one line on stderr, no traceback, and
nothing created or changed anywhere the command could write (the README's promise).

The commands run in this process (``nasq.cli.main``), so that a corpus of dozens costs seconds; the subprocess
tests in test_cli.py check the same at the level of a real exit."""

import json
import os
from pathlib import Path

import pytest
from test_cli import fake_run  # noqa: F401 (a fixture: a run directory as the driver writes it)

from nasq.cli import main
from nasq.search.run_dir import RUN_MARKER

BINARY = bytes(range(256)) * 8
NUMBERS = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "huge": 1e308,
    "tiny": 1e-320,
    "negative": -1.0,
}


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under ``roots``, with its size and modification time."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A workspace, an output folder named by the configs, and a profile store of their own: all watched."""
    (tmp_path / "work").mkdir()
    store = tmp_path / "store"
    monkeypatch.setenv("NASQ_PROFILE_STORE", str(store))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def assert_refused(world, capsys, argv, fragment=""):
    before = snapshot(world)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("nasq: error: "), (argv, err)
    assert "Traceback" not in err
    assert fragment in lines[0], (argv, lines[0])
    assert snapshot(world) == before, f"{argv} created or changed files"


def write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# --- configs ---------------------------------------------------------------------------------------------------


def config_corpus(out: Path) -> dict[str, tuple[object, str]]:
    head = f"output_dir: {out}\n"
    corpus = {
        "binary": (BINARY, "is not a text file"),
        "truncated": (head + "search: {num_candidates: ", "config"),
        "a list": ("- 1\n- 2\n", "config"),
        "a string": ("hello\n", "config"),
        "unknown key": (head + "serch: {}\n", "unknown key 'serch'"),
        "unknown space": (head + "space: nope\n", "unknown space 'nope'"),
        "unknown target": (head + "targets: [nope]\n", "unknown target 'nope'"),
        "target a folder": (head + f"targets: [{out.parent}/]\n", "profile file"),
        "target missing": (head + f"targets: [{out.parent / 'missing.json'}]\n", "does not exist"),
        "wrong type": (head + "search: {num_candidates: many}\n", "search.num_candidates must be int"),
        "section a list": (head + "search: [1, 2]\n", "search"),
        "lr nan": (head + "accuracy: {lr: .nan}\n", "accuracy.lr must be a finite number"),
        "lr inf": (head + "accuracy: {lr: .inf}\n", "accuracy.lr must be a finite number"),
        "lr huge": (head + "accuracy: {lr: 1.0e+308}\n", "above the maximum"),
        "val_fraction nan": (head + "data: {val_fraction: .nan}\n", "data.val_fraction must be a finite number"),
        "max_concurrent 0": (
            head + "search: {max_concurrent: 0}\n",
            "search.max_concurrent = 0 is below the minimum 1",
        ),
        "val_fraction tiny": (head + "data: {val_fraction: 1.0e-320}\n", "below the minimum"),
        "candidates huge": (head + "search: {num_candidates: 1000000000000000000000}\n", "above the maximum"),
        "candidates negative": (head + "search: {num_candidates: -3}\n", "below the minimum"),
        "bits nan": (head + "model: {factory: m.py:f, input_shape: [1, 28, 28], bits: [.nan]}\n", "model.bits"),
    }
    return corpus


@pytest.mark.parametrize("case", list(config_corpus(Path("/x/runs"))))
def test_search_refuses_every_malformed_config(world, capsys, case):
    content, fragment = config_corpus(world / "runs")[case]
    config = write(world / "work" / "c.yaml", content)
    assert_refused(world, capsys, ["search", config], fragment)


# --- profiles, as targets of search, predict and profile validate -----------------------------------------------


def profile_corpus() -> dict[str, tuple[object, str]]:
    from conftest import profile_data

    from nasq.hardware_profiles import load_profile

    ort = profile_data()
    bitserial = load_profile("bitserial-sim").data
    corpus = {
        "binary": (BINARY, "is not a text file"),
        "empty": ("", "not valid JSON"),
        "truncated": (json.dumps(ort)[:200], "not valid JSON"),
        "a list": ("[1, 2]", "expected a JSON object"),
        "no machine record": ({**ort, "metadata": {**ort["metadata"], "device": None}}, "device"),
        "unknown predictor": ({**ort, "predictor": "magic"}, "magic"),
    }
    for label, value in NUMBERS.items():
        if label != "tiny":  # a tiny overhead is a zero one
            corpus[f"overhead {label}"] = ({**ort, "overhead_ms": value}, "overhead_ms")
        acc = {**bitserial["accelerator"], "clock_mhz": value}
        corpus[f"clock {label}"] = ({**bitserial, "accelerator": acc}, "accelerator.clock_mhz")
    corpus["brick bits tiny"] = (
        {**bitserial, "accelerator": {**bitserial["accelerator"], "brick_bits": 1e-320}},
        "accelerator.brick_bits = 1e-320 is out of range",
    )
    return corpus


@pytest.fixture(scope="module")
def profiles():
    return profile_corpus()


def _profile_file(world, profiles, case) -> Path:
    content, fragment = profiles[case]
    text = content if isinstance(content, (str, bytes)) else json.dumps(content)  # NaN and Infinity as JSON has them
    return write(world / "work" / "p.json", text), fragment


@pytest.mark.parametrize("case", list(profile_corpus()))
def test_every_command_refuses_every_malformed_profile(world, capsys, profiles, case):
    from nasq.predict import real_topology

    path, fragment = _profile_file(world, profiles, case)
    config = write(world / "work" / "c.yaml", f"output_dir: {world / 'runs'}\ntargets: [{path}]\n")
    assert_refused(world, capsys, ["search", config], fragment)
    assert_refused(world, capsys, ["predict", real_topology("squeezenet"), "--target", path], fragment)
    assert_refused(world, capsys, ["profile", "validate", "--target", path], fragment)


# --- models, run directories, CSVs, arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, fragment",
    [
        (BINARY, "is not an ONNX model"),
        (b"", "ONNX"),
        ("folder", "m.onnx"),
        (None, "does not exist"),
    ],
)
def test_predict_refuses_malformed_models(world, capsys, content, fragment):
    model = world / "work" / "m.onnx"
    if content == "folder":
        model.mkdir()
    elif content is not None:
        write(model, content)
    assert_refused(world, capsys, ["predict", model, "--target", "bitserial-sim"], fragment)


def _marker(world, content) -> Path:
    run_dir = world / "work" / "run"
    run_dir.mkdir()
    if content is not None:
        write(run_dir / "nasq_run.json", content)
    return run_dir


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "is not a nasq run directory"),
        (BINARY, "is not a text file"),
        ("", "is corrupt"),
        ("[1]", "is corrupt"),
        ('{"config": {}, "profiles": {}}', "names no nasq_version"),
        ('{"nasq_version": "0.1.0", "config": {"serch": 1}, "profiles": {}}', "unknown key 'serch'"),
    ],
)
def test_best_and_resume_refuse_malformed_run_directories(world, capsys, content, fragment):
    run_dir = _marker(world, content)
    assert_refused(world, capsys, ["search", "--resume", run_dir], fragment)
    if "nasq_version" not in fragment:
        assert_refused(world, capsys, ["best", run_dir, "--target", "bitserial-sim", "--out", world / "out"], fragment)


def test_best_refuses_what_it_cannot_do_for_a_real_run(world, capsys, fake_run):  # noqa: F811 (the fixture)
    out = world / "o"
    assert_refused(
        world, capsys, ["best", world / "work", "--target", "xeon-avx512-ort", "--out", out], "not a nasq run"
    )
    assert_refused(
        world,
        capsys,
        ["best", fake_run, "--target", "bitserial-sim", "--out", out],
        "'bitserial-sim' is not a target of this run",
    )
    assert_refused(
        world,
        capsys,
        ["best", fake_run, "--target", "xeon-avx512-ort", "--max-latency-ms", "0.001", "--out", out],
        "no candidate within 0.001 ms",
    )
    (world / "file").write_text("")
    assert_refused(
        world,
        capsys,
        ["best", fake_run, "--target", "xeon-avx512-ort", "--out", world / "file" / "o"],
        "cannot be created",
    )
    (fake_run / RUN_MARKER).write_text("{")
    assert_refused(world, capsys, ["best", fake_run, "--target", "xeon-avx512-ort", "--out", out], "is corrupt")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (BINARY, "is not a text file"),
        ("", "dev_ms"),
        ("arch_str,dev_ms\n", "has 0 data row(s)"),
        ("arch_str,dev_ms\n|nor_conv_3x3~0|,nan\n", "dev_ms"),
        ("folder", "cannot read"),
    ],
)
def test_profile_import_refuses_malformed_csvs(world, capsys, content, fragment):
    csv = world / "work" / "lat.csv"
    if content == "folder":
        csv.mkdir()
    else:
        write(csv, content)
    assert_refused(
        world,
        capsys,
        [
            "profile",
            "import",
            "--csv",
            csv,
            "--space",
            "nas-bench-201",
            "--column",
            "dev_ms",
            "--name",
            "x",
            "--out",
            world / "new" / "x.json",
        ],
        fragment,
    )


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["best", "r", "--max-latency-ms", "-1"], "must be positive"),
        (["best", "r", "--max-latency-ms", "nan"], "must be positive"),
        (["best", "r", "--max-accuracy-drop", "inf", "--target", "t"], "inf must be finite"),
        (["predict", "m.onnx", "--target", "t", "--input-shape", "3,x"], "comma-separated list of integers"),
        (["predict", "m.onnx", "--target", "t", "--input-shape", "0,1"], "dimensions must be between"),
        (["profile", "import", "--samples", "1"], "must be at least 2"),
        (["targets", "--nope"], "unrecognized arguments"),
        (["nope"], "invalid choice"),
    ],
)
def test_argument_mistakes_are_one_line(world, capsys, argv, fragment):
    assert_refused(world, capsys, argv, fragment)
