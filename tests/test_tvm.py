"""The TVM profiler backend: compiled with tvm.compile for LLVM, measured locally and through a real
tvm.rpc server on loopback."""

import json
import socket

import pytest
from test_cli import assert_clean_error, run

from nasq.errors import NasqError
from nasq.hardware_profiles import create_predictor
from nasq.hardware_profiles.profile import Profile
from nasq.spaces.base import LayerSpec

pytest.importorskip("tvm", reason="apache-tvm is part of the test extra; install with pip install -e '.[test]'")

SHAPES = [
    LayerSpec("", "conv", 1, 16, 3, 2, 28),
    LayerSpec("", "conv", 16, 32, 1, 1, 14),
    LayerSpec("", "dwconv", 32, 32, 3, 1, 14),
    LayerSpec("", "linear", 32, 10),
]


@pytest.fixture
def rpc_server():
    from tvm import rpc

    server = rpc.Server(host="127.0.0.1", port=9190, port_end=9390)
    yield f"127.0.0.1:{server.port}"
    server.terminate()


def test_profile_through_rpc_on_loopback_calibrates_and_validates_there(rpc_server, space, tmp_path):
    from nasq.hardware_profiles import PROFILERS
    from nasq.hardware_profiles.validation import validate_profile

    data = PROFILERS.create("tvm", rpc=rpc_server, repetitions=5, networks=3, network_seconds=1).profile(
        SHAPES, name="tvm-rpc", space=space.name, quick=True, log=lambda m: None
    )
    prof = Profile.from_dict(data, "tvm-rpc")
    assert prof.metadata["runtime"] == "tvm" and rpc_server in prof.metadata["measured_via"]
    assert prof.remote and prof.metadata["rpc"] == rpc_server
    assert not prof.int8 and len(data["layers"]) == len(SHAPES)
    assert all(e["latency_ms"] > 0 for e in data["layers"])
    # 6 whole networks compiled, run on the server, and used to calibrate and choose the predictor
    selection = data["predictor_selection"]
    assert len(selection["measured_ms"]) == 6 and all(m > 0 for m in selection["measured_ms"])
    assert selection["chosen"] == prof.predictor and set(selection["scores"]) == {"table", "calibrated"}
    assert data["calibration"]["fitted_on_networks"] == 6
    big = LayerSpec("x", "conv", 16, 32, 1, 1, 14)
    small = LayerSpec("x", "conv", 16, 8, 1, 1, 14)  # interpolated below the measured cout: MAC-scaled
    pred = create_predictor(prof)
    assert pred.predict([big]).total_ms > pred.predict([small]).total_ms > 0

    # validation reconnects to the same server and measures new networks there
    path = tmp_path / "tvm-rpc.json"
    path.write_text(json.dumps(data))
    validation = validate_profile(
        path, networks=3, repetitions=3, seed=0, log=lambda m: None, topologies=(), min_seconds=1
    )
    assert validation["networks"] == 3 and 0 <= validation["within_20pct"] <= 1
    assert json.loads(path.read_text())["validation"]["date"] != data["validation"]["date"]


def test_local_profile_from_the_cli(tmp_path):
    out = run(
        "profile",
        "--backend",
        "tvm",
        "--name",
        "tvm-local",
        "--quick",
        "--repetitions",
        "3",
        "--space",
        "nas-bench-201",
        "--networks",
        "0",
        "--out",
        tmp_path / "t.json",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["metadata"]["measured_via"] == "local" and data["metadata"]["runtime_version"]
    assert len(data["layers"]) == 12  # every conv shape of the NAS-Bench-201 network, and its classifier
    assert data["predictor"] == "table" and "calibration" not in data  # --networks 0: no whole networks


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rpc_target_that_does_not_answer_is_a_clear_error(tmp_path):
    out = run(
        "profile",
        "--backend",
        "tvm",
        "--name",
        "x",
        "--rpc",
        f"127.0.0.1:{_closed_port()}",
        "--out",
        tmp_path / "x.json",
    )
    assert_clean_error(out, "does not answer")
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(NasqError, match="must be HOST:PORT"):
        from nasq.hardware_profiles.tvm_profiler import TvmProfiler

        TvmProfiler(rpc="nowhere")
    assert_clean_error(
        run("profile", "--backend", "tvm", "--name", "x", "--tvm-target", "llvm", "--out", tmp_path / "x.json"),
        "must be a JSON dict",
    )
